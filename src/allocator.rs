//! The binary's memory allocator (also used by `examples/time_model.rs`, so
//! that its timings are the product's).

/// mimalloc instead of the system allocator: the NN core allocates a fresh
/// multi-megabyte buffer per layer, and glibc serves those with `mmap`, so
/// every layer paid for zeroed pages and their faults again (half of an
/// ESPCN forward pass: 71 ms CPU with glibc, 35 ms with mimalloc, which
/// keeps freed memory for reuse).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's `mi_option_purge_delay` (the same value in its v2 and v3
/// headers; the Rust bindings do not name it).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Keeps freed memory instead of returning it to the OS 10 ms later: layer
/// after layer and step after step need the same sizes again, and returned
/// pages come back zeroed, through page faults (EDSR x4 training: 0.3-0.45 s
/// of system time per 40 steps instead of 0.8-2.1 s). The process's
/// footprint stays at its peak, which it reaches again at every step anyway.
pub fn keep_freed_memory() {
    // SAFETY: sets a plain integer option; called before any thread starts.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1) };
}
