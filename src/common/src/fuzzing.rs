//! What the fuzz tests share (`src/rpc/tests/fuzz_frames.rs`, `src/storage/tests/fuzz_log.rs`):
//! an allocator that remembers the largest single allocation, so a test can prove that no length
//! field made a decoder allocate beyond a bound, and the run's length and seed from the
//! environment.
//!
//! A fuzz test installs the allocator in its own binary:
//! `#[global_allocator] static ALLOCATOR: LargestAllocation = LargestAllocation;`

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// The system allocator, remembering the largest allocation since the last [`reset_largest`].
pub struct LargestAllocation;

static LARGEST: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is passed on unchanged to the system allocator.
unsafe impl GlobalAlloc for LargestAllocation {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LARGEST.fetch_max(new_size, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

/// Forgets the largest allocation so far.
pub fn reset_largest() {
    LARGEST.store(0, Ordering::Relaxed);
}

/// The largest single allocation (or reallocation) since [`reset_largest`], in bytes.
pub fn largest() -> usize {
    LARGEST.load(Ordering::Relaxed)
}

/// How long to fuzz (`AERIE_FUZZ_SECONDS`, default 3) and with which seed (`AERIE_FUZZ_SEED`,
/// default: the clock). Prints both, so that a failure can be replayed.
pub fn run_settings(what: &str) -> (Duration, u64) {
    let env = |name: &str| std::env::var(name).ok().and_then(|s| s.parse::<u64>().ok());
    let seconds = env("AERIE_FUZZ_SECONDS").unwrap_or(3);
    let seed = env("AERIE_FUZZ_SEED").unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1)
    });
    eprintln!("fuzzing {what} for {seconds} s with AERIE_FUZZ_SEED={seed}");
    (Duration::from_secs(seconds), seed)
}
