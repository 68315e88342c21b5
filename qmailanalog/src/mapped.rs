//! Read-only memory maps of windows of a regular file, for the `zoverall` fast path
//! ([`crate::fast::run`]): the lines are looked at where the page cache holds them, without
//! copying the file through `read()` first.
//!
//! A map covers bytes of the file that existed when the file was opened (the caller maps
//! only up to the size it saw then and reads anything appended later with `read()`). If
//! the file shrinks while mapped (someone truncates it), touching a mapped page past the
//! new end would raise SIGBUS and kill the process; a SIGBUS handler installed here turns
//! such a page of one of our maps into a page of zeros instead (the access is then simply
//! repeated) and notes that it happened ([`take_shrunk`]), so the caller can warn. Faults
//! at any other address go on to the handler that was there before (Rust's, which reports
//! a stack overflow or restores the default action, which ends the process as before).

use std::fs::File;
use std::os::fd::AsRawFd;
use std::sync::Once;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// Bytes in a map (a multiple of every page size Linux uses).
pub const WINDOW: usize = 4 << 20;

/// Start addresses of our live maps (0: free slot). Every map is [`WINDOW`] bytes long,
/// so one atomic word describes one map and the handler never sees half an entry.
static SLOTS: [AtomicUsize; 64] = [const { AtomicUsize::new(0) }; 64];
/// Set by the handler when it replaced a page.
static SHRUNK: AtomicBool = AtomicBool::new(false);
static PAGE: AtomicUsize = AtomicUsize::new(4096);
static INSTALL: Once = Once::new();
static INSTALLED: AtomicBool = AtomicBool::new(false);
/// The SIGBUS action before ours (written once, before our handler is installed).
static mut PREVIOUS: Option<libc::sigaction> = None;

/// Whether a SIGBUS in one of our maps was answered with zeros since the last call.
pub fn take_shrunk() -> bool {
    SHRUNK.swap(false, Ordering::AcqRel)
}

extern "C" fn on_sigbus(sig: libc::c_int, info: *mut libc::siginfo_t, _ctx: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid siginfo_t for a handler installed with SA_SIGINFO;
    // si_addr is the faulting address for SIGBUS.
    let addr = unsafe { (*info).si_addr() } as usize;
    let page = PAGE.load(Ordering::Relaxed);
    for slot in &SLOTS {
        let start = slot.load(Ordering::Acquire);
        if start != 0 && addr >= start && addr < start + WINDOW {
            let at = addr & !(page - 1);
            // SAFETY: the page lies inside one of our live maps (the thread that touched
            // it holds the map, so it cannot be unmapped meanwhile); replacing it with an
            // anonymous read-only page of zeros changes nothing but what that page reads.
            // mmap is a plain system call, safe to make in a signal handler.
            let r = unsafe {
                libc::mmap(
                    at as *mut libc::c_void,
                    page,
                    libc::PROT_READ,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED,
                    -1,
                    0,
                )
            };
            if r != libc::MAP_FAILED {
                SHRUNK.store(true, Ordering::Release);
                return;
            }
            break;
        }
    }
    // Not ours: put the previous action back and return; the access faults again and the
    // previous action handles it as if we had never been here.
    // SAFETY: PREVIOUS was written before this handler was installed and never again;
    // sigaction is async-signal-safe.
    unsafe {
        let prev = &*std::ptr::addr_of!(PREVIOUS);
        match prev {
            Some(p) => {
                libc::sigaction(sig, p, std::ptr::null_mut());
            }
            None => {
                libc::signal(sig, libc::SIG_DFL);
            }
        }
    }
}

/// Install the SIGBUS handler (once); false when that failed (then do not map).
fn install() -> bool {
    INSTALL.call_once(|| {
        // SAFETY: sysconf only reads a value; sigaction with a zeroed struct plus our
        // handler, flags and an empty mask is a valid request; PREVIOUS is written here,
        // once, before the handler that reads it exists.
        unsafe {
            let p = libc::sysconf(libc::_SC_PAGESIZE);
            if p > 0 && (p as usize).is_power_of_two() && WINDOW.is_multiple_of(p as usize) {
                PAGE.store(p as usize, Ordering::Relaxed);
            } else {
                return;
            }
            let mut old: libc::sigaction = std::mem::zeroed();
            if libc::sigaction(libc::SIGBUS, std::ptr::null(), &mut old) != 0 {
                return;
            }
            *std::ptr::addr_of_mut!(PREVIOUS) = Some(old);
            let mut act: libc::sigaction = std::mem::zeroed();
            act.sa_sigaction = on_sigbus as *const () as usize;
            act.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
            libc::sigemptyset(&mut act.sa_mask);
            if libc::sigaction(libc::SIGBUS, &act, std::ptr::null_mut()) == 0 {
                INSTALLED.store(true, Ordering::Release);
            }
        }
    });
    INSTALLED.load(Ordering::Acquire)
}

/// A read-only map of [`WINDOW`] bytes of a file from a page-aligned offset, of which the
/// first `valid` bytes were in the file when it was opened.
pub struct Mapping {
    addr: usize,
    valid: usize,
    slot: usize,
}

impl Mapping {
    /// Map `file` from `offset` (a multiple of [`WINDOW`]); `valid` (at most WINDOW) bytes
    /// of it existed when the file was opened. `None` when mapping is not possible here
    /// (then read the file instead).
    pub fn new(file: &File, offset: u64, valid: usize) -> Option<Mapping> {
        if valid > WINDOW || !offset.is_multiple_of(WINDOW as u64) || !install() {
            return None;
        }
        let off = libc::off_t::try_from(offset).ok()?;
        // SAFETY: a new shared read-only map of an open file at an address the kernel
        // chooses: it overlaps no memory Rust knows about.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                WINDOW,
                libc::PROT_READ,
                libc::MAP_SHARED,
                file.as_raw_fd(),
                off,
            )
        };
        if p == libc::MAP_FAILED {
            return None;
        }
        let addr = p as usize;
        let unmap = || {
            // SAFETY: p..p+WINDOW is the map just made, not yet shared with anyone.
            unsafe { libc::munmap(p, WINDOW) };
        };
        let Some(slot) = SLOTS.iter().position(|s| {
            s.compare_exchange(0, addr, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
        }) else {
            unmap();
            return None;
        };
        // Fill the page tables for the file's bytes now, in one go, rather than one fault
        // at a time (an error, e.g. from a kernel without MADV_POPULATE_READ, only means
        // the pages fault in as they are touched).
        let page = PAGE.load(Ordering::Relaxed);
        let len = (valid + page - 1) & !(page - 1);
        if len > 0 {
            // SAFETY: advice on our own map (len <= WINDOW); it changes no contents.
            unsafe { libc::madvise(p, len, libc::MADV_POPULATE_READ) };
        }
        Some(Mapping { addr, valid, slot })
    }

    /// The file's bytes in this map (as far as they existed at open).
    pub fn bytes(&self) -> &[u8] {
        // SAFETY: addr..addr+valid lies inside our live read-only map (valid <= WINDOW),
        // which stays mapped until self is dropped, and the slice borrows self. Those
        // pages show bytes that existed in the file at open: writers that append (qmail-
        // send through multilog) never change them, renaming or unlinking the file does
        // not either, and if the file is cut short the SIGBUS handler makes the pages
        // past the cut read as zeros (any u8 is a valid value, and everything read from
        // here is only ever used through bounds-checked indexing). Only a program that
        // rewrites the file in place could change bytes under us; then we read some mix
        // of old and new bytes, never outside the map.
        unsafe { std::slice::from_raw_parts(self.addr as *const u8, self.valid) }
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        SLOTS[self.slot].store(0, Ordering::Release);
        // SAFETY: our own map, no longer borrowed (bytes() borrows self).
        unsafe { libc::munmap(self.addr as *mut libc::c_void, WINDOW) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A file cut short under its map reads as zeros past the cut instead of killing us.
    #[test]
    fn a_file_cut_short_while_mapped_reads_zeros() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("log");
        let data: Vec<u8> = (0..3 * 65536).map(|i| b'a' + (i % 26) as u8).collect();
        std::fs::write(&p, &data).unwrap();
        let f = File::open(&p).unwrap();
        let m = Mapping::new(&f, 0, data.len()).expect("map");
        assert_eq!(m.bytes(), &data[..]);
        let _ = take_shrunk();
        std::fs::OpenOptions::new()
            .write(true)
            .open(&p)
            .unwrap()
            .set_len(100)
            .unwrap();
        let b = m.bytes();
        assert_eq!(&b[..100], &data[..100]);
        let tail = &b[2 * 65536..];
        assert!(tail.iter().all(|&c| c == 0));
        assert!(take_shrunk());
        drop(m);
        // a map of the next window of a file too short for it is refused or empty
        assert!(Mapping::new(&f, 1, 10).is_none());
    }
}
