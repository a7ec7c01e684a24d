//! The global allocator of Wavelake's native binaries: mimalloc, holding
//! memory a query freed for [`FREED_MEMORY_KEPT_MS`] before it returns it
//! to the operating system.
//!
//! mimalloc's default (one second) returns freed pages before the next
//! query, or the next phase of the same one, asks for them again, and the
//! kernel then zeroes every page anew: a fifth of TPC-H SF10 Q18's profile
//! was the kernel clearing pages for a growing aggregation hash table
//! (`clear_page_erms` under `RawTable::reserve_rehash`). Kept ten seconds,
//! the same server took 0.86x the time over Q3, Q5, Q7, Q9, Q10, Q16 and
//! Q18 (Q18 0.74x, Q7 0.67x). The delay is no timer: freed memory goes back
//! when the thread that freed it next allocates after the delay, so an
//! idle server keeps what its last query freed until it works again.

use std::os::raw::c_long;

/// The global allocator: `#[global_allocator] static A: Allocator = Allocator;`.
pub use mimalloc::MiMalloc as Allocator;

/// How long freed memory stays mapped for reuse, in milliseconds.
pub const FREED_MEMORY_KEPT_MS: c_long = 10_000;

/// mimalloc's `mi_option_purge_delay` (`mi_option_e` in v3's `mimalloc.h`;
/// `libmimalloc-sys` names no constant for it).
const PURGE_DELAY_OPTION: libmimalloc_sys::mi_option_t = 15;

/// The environment variable that sets the delay instead (mimalloc reads it
/// when the process loads): left to win when given.
const PURGE_DELAY_VARIABLE: &str = "MIMALLOC_PURGE_DELAY";

/// Has the allocator keep freed memory for [`FREED_MEMORY_KEPT_MS`], unless
/// `MIMALLOC_PURGE_DELAY` says otherwise. Call it first in `main`, before
/// any other thread starts: mimalloc's options are not set atomically.
pub fn keep_freed_memory() {
    if std::env::var_os(PURGE_DELAY_VARIABLE).is_some() {
        return;
    }
    #[allow(unsafe_code)]
    // SAFETY: `mi_option_set` writes one entry of mimalloc's option table
    // and reads nothing through pointers; the option index is in range for
    // the linked mimalloc (v3, whose `mi_option_e` has it at 15). The
    // caller runs this before other threads exist, so no allocation reads
    // the entry while it is written.
    unsafe {
        libmimalloc_sys::mi_option_set(PURGE_DELAY_OPTION, FREED_MEMORY_KEPT_MS);
    }
}

/// The delay the allocator now uses, in milliseconds.
pub fn freed_memory_kept_ms() -> c_long {
    #[allow(unsafe_code)]
    // SAFETY: `mi_option_get` reads one entry of mimalloc's option table.
    unsafe {
        libmimalloc_sys::mi_option_get(PURGE_DELAY_OPTION)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn freed_memory_is_kept_for_the_chosen_delay() {
        if std::env::var_os(PURGE_DELAY_VARIABLE).is_some() {
            eprintln!("{PURGE_DELAY_VARIABLE} is set: the delay is the environment's");
            return;
        }
        assert_eq!(freed_memory_kept_ms(), 1_000, "mimalloc v3's own default");
        keep_freed_memory();
        assert_eq!(freed_memory_kept_ms(), FREED_MEMORY_KEPT_MS);
    }
}
