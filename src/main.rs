//! The `ssvae` command line: `train` (with per-epoch checkpoints, a metrics log, exact
//! `--resume`), `eval` (test error, ELBO, importance-weighted bound, clustering ACC/NMI of a
//! checkpoint), `sample` (class-conditional and analogy grids as PNG) and `bench` (a quick
//! table of the engine's speed on this machine). The commands live in `cli/`, a file each.

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
