//! Hardware-independent counts of one launch: what a profiler would count on a GPU, without the
//! times (an interpreter's times say nothing about a GPU's).
//!
//! - instructions: warp-level (one per group of lanes issuing together) and lane-level;
//! - global memory: requests (one per warp-level load/store/atomic) and the distinct 32-byte
//!   sectors each touches; `sectors / ideal_sectors` is the coalescing overhead, where the ideal
//!   is the distinct bytes the active lanes asked for, rounded up to whole sectors;
//! - shared memory: requests and wavefronts (the passes a 32-bank memory needs: a request whose
//!   lanes hit distinct words of one bank takes one wavefront per word), so
//!   `wavefronts - requests` counts bank conflicts;
//! - barriers completed (`bar.sync`, counted once per block per barrier).
//!
//! With the stand-in driver, `PTXEMU_PROFILE=FILE` appends one CSV row per launch to FILE
//! ([`LaunchProfile::CSV_HEADER`] first when the file is new).

/// The counts of one launch. Instructions and barriers are always counted; the memory counts
/// only when profiling is on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LaunchProfile {
    pub warp_instructions: u64,
    pub lane_instructions: u64,
    pub global_requests: u64,
    pub global_sectors: u64,
    pub global_ideal_sectors: u64,
    pub global_bytes: u64,
    pub shared_requests: u64,
    pub shared_wavefronts: u64,
    pub barriers: u64,
}

impl LaunchProfile {
    /// The columns of [`LaunchProfile::csv_row`].
    pub const CSV_HEADER: &'static str = "kernel,grid,block,warp_instructions,lane_instructions,\
        global_requests,global_sectors,global_ideal_sectors,global_bytes,shared_requests,\
        shared_wavefronts,barriers";

    /// One CSV row (grid and block as `XxYxZ`).
    pub fn csv_row(&self, kernel: &str, grid: [u32; 3], block: [u32; 3]) -> String {
        format!(
            "{kernel},{}x{}x{},{}x{}x{},{},{},{},{},{},{},{},{},{}",
            grid[0],
            grid[1],
            grid[2],
            block[0],
            block[1],
            block[2],
            self.warp_instructions,
            self.lane_instructions,
            self.global_requests,
            self.global_sectors,
            self.global_ideal_sectors,
            self.global_bytes,
            self.shared_requests,
            self.shared_wavefronts,
            self.barriers
        )
    }

    /// Add another launch's counts.
    pub fn add(&mut self, o: &LaunchProfile) {
        self.warp_instructions += o.warp_instructions;
        self.lane_instructions += o.lane_instructions;
        self.global_requests += o.global_requests;
        self.global_sectors += o.global_sectors;
        self.global_ideal_sectors += o.global_ideal_sectors;
        self.global_bytes += o.global_bytes;
        self.shared_requests += o.shared_requests;
        self.shared_wavefronts += o.shared_wavefronts;
        self.barriers += o.barriers;
    }
}
