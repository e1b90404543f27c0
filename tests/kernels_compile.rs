//! Compiles every `kernels/*.cu` file with NVRTC for sm_80 and sm_90 — no GPU or driver needed,
//! only libnvrtc — and fails on any error or warning. Uses the runtime's own compile path
//! ([`ssvae::backend::cuda::runtime::compile_program`] with the runtime's options) plus
//! `-Xptxas=-v -Xptxas=-warn-spills`, so register spills show up as warnings too.
//!
//! The kernel files are found by reading the folder at test time (`kernels/` of the crate, or
//! `$SSVAE_KERNELS_DIR`), so a new `.cu` file is covered without touching this test. Headers (`*.cuh`) are handed to NVRTC by name, as at run time.
//!
//! When libnvrtc cannot be loaded the test prints why and passes, unless `SSVAE_REQUIRE_NVRTC=1`
//! (CI), in which case it fails. `scripts/install-nvrtc.sh` installs it from PyPI.
// The CUDA backend is the `cuda` feature (on by default).
#![cfg(feature = "cuda")]

use ssvae::backend::cuda::runtime::{
    compile_program, default_options, nvrtc_available, nvrtc_version,
};
use std::path::Path;

const ARCHS: [&str; 2] = ["sm_80", "sm_90"];

fn read_dir_sorted(dir: &Path, ext: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().and_then(|x| x.to_str()) == Some(ext))
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            let src = std::fs::read_to_string(&p)
                .unwrap_or_else(|e| panic!("cannot read {}: {e}", p.display()));
            (name, src)
        })
        .collect();
    out.sort();
    out
}

/// Lines of an NVRTC/ptxas log that are warnings (or worse).
fn bad_lines(log: &str) -> Vec<&str> {
    log.lines()
        .filter(|l| {
            let l = l.to_ascii_lowercase();
            l.contains("warning") || l.contains("error")
        })
        .collect()
}

/// "Used N registers" per function from a `-Xptxas=-v` log: (function, registers).
fn registers(log: &str) -> Vec<(String, u32)> {
    let mut out = Vec::new();
    let mut func = String::new();
    for line in log.lines() {
        if let Some(i) = line.find("Compiling entry function '") {
            let rest = &line[i + "Compiling entry function '".len()..];
            func = rest.split('\'').next().unwrap_or("").to_string();
        }
        if let Some(i) = line.find("Used ") {
            let n = line[i + 5..]
                .split_whitespace()
                .next()
                .and_then(|s| s.parse().ok());
            if let Some(n) = n {
                out.push((func.clone(), n));
            }
        }
    }
    out
}

#[test]
fn every_kernel_compiles_for_sm80_and_sm90() {
    if !nvrtc_available() {
        let why = "libnvrtc not found by the dynamic loader (run scripts/install-nvrtc.sh and \
                   export the LD_LIBRARY_PATH it prints)";
        if std::env::var("SSVAE_REQUIRE_NVRTC").as_deref() == Ok("1") {
            panic!("SSVAE_REQUIRE_NVRTC=1 but {why}");
        }
        println!("skipped: {why}");
        return;
    }
    let (maj, min) = nvrtc_version().expect("nvrtcVersion");
    println!("NVRTC {maj}.{min}");
    // SSVAE_KERNELS_DIR: where the GPU bundle (scripts/gpu-bundle.sh) puts its copy of kernels/.
    let dir = match std::env::var_os("SSVAE_KERNELS_DIR") {
        Some(d) => std::path::PathBuf::from(d),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("kernels"),
    };
    let headers = read_dir_sorted(&dir, "cuh");
    let sources = read_dir_sorted(&dir, "cu");
    assert!(!sources.is_empty(), "no .cu files in {}", dir.display());
    let hdr: Vec<(&str, &str)> = headers
        .iter()
        .map(|(n, s)| (n.as_str(), s.as_str()))
        .collect();

    let mut failures = Vec::new();
    let mut compiled = 0;
    for (name, src) in &sources {
        let mut sizes = Vec::new();
        let mut ok = true;
        for arch in ARCHS {
            let mut opts = default_options(arch);
            opts.push("-Xptxas=-v".into());
            opts.push("-Xptxas=-warn-spills".into());
            match compile_program(src, name, &hdr, &opts) {
                Err(e) => {
                    ok = false;
                    failures.push(format!("{name} ({arch}): {e}"));
                }
                Ok(c) => {
                    let bad = bad_lines(&c.log);
                    if !bad.is_empty() {
                        ok = false;
                        failures.push(format!("{name} ({arch}) warnings:\n{}", bad.join("\n")));
                    }
                    if c.cubin.is_empty() {
                        ok = false;
                        failures.push(format!("{name} ({arch}): empty CUBIN"));
                    }
                    let regs = registers(&c.log);
                    let max = regs.iter().max_by_key(|r| r.1);
                    if let Some((f, r)) = max {
                        println!(
                            "  {name} {arch}: {} kernels, most registers {r} ({f})",
                            regs.len()
                        );
                    }
                    sizes.push(c.cubin.len());
                }
            }
        }
        if ok {
            compiled += 1;
            let sizes: Vec<String> = sizes.iter().map(|s| s.to_string()).collect();
            println!(
                "compiled {name} for {} ({} bytes CUBIN)",
                ARCHS.join(", "),
                sizes.join(" / ")
            );
        }
    }
    println!(
        "{compiled} of {} kernel files compiled for {}",
        sources.len(),
        ARCHS.join(", ")
    );
    assert!(
        failures.is_empty(),
        "kernel compile failures:\n{}",
        failures.join("\n\n")
    );
}

/// The runtime compiles the sources embedded in the binary with the headers embedded in the binary
/// (no disk access): check that this set is complete, through the runtime's own entry point.
#[test]
fn embedded_sources_compile_with_embedded_headers() {
    use ssvae::backend::cuda::runtime::{compile_cubin, KERNEL_SOURCES};
    if !nvrtc_available() {
        println!("skipped: libnvrtc not found by the dynamic loader");
        return;
    }
    for (name, src) in KERNEL_SOURCES {
        let (cubin, log) = compile_cubin(src, name, "sm_90")
            .unwrap_or_else(|e| panic!("embedded {name} does not compile: {e}"));
        assert!(!cubin.is_empty(), "{name}: empty CUBIN");
        assert!(bad_lines(&log).is_empty(), "{name}: {log}");
    }
    println!(
        "{} embedded kernel files compiled for sm_90",
        KERNEL_SOURCES.len()
    );
}
