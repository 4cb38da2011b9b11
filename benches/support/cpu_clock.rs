//! CPU-time clocks (Linux `clock_gettime`), shared by `benches/nn.rs` and
//! `examples/time_model.rs`: CPU time stays comparable when other processes
//! compete for the cores, where wall time does not.

/// `struct timespec` of 64-bit Linux.
#[repr(C)]
struct Timespec {
    tv_sec: i64,
    tv_nsec: i64,
}

extern "C" {
    fn clock_gettime(clock: i32, tp: *mut Timespec) -> i32;
}

fn cpu_ns(clock: i32) -> u64 {
    let mut ts = Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable `struct timespec`.
    let rc = unsafe { clock_gettime(clock, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime");
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// CPU time of the calling thread in ns (`CLOCK_THREAD_CPUTIME_ID`, the
/// clock of Python's `time.thread_time`).
#[allow(dead_code)]
pub fn thread_cpu_ns() -> u64 {
    cpu_ns(3)
}

/// CPU time of the whole process in ns (`CLOCK_PROCESS_CPUTIME_ID`, the
/// clock of Python's `time.process_time`).
#[allow(dead_code)]
pub fn process_cpu_ns() -> u64 {
    cpu_ns(2)
}
