//! Random bytes from the operating system, fetched in blocks.
//!
//! A flow takes randomness several times (the browser binding, the state's nonce, a nonce per
//! sealed token), and one `getrandom` system call per use was 4 % of the CPU of `GET /connect`
//! under load (`perf`, see `docs/BENCHMARKS.md`). Each thread keeps a block of the kernel's
//! random bytes and hands out each byte once; a byte handed out is wiped from the block. The
//! bytes are the kernel's own, not stretched by a generator of ours, so nothing here needs
//! seeding or reseeding. The process does not fork without exec, so no two processes share a
//! block.

use std::cell::RefCell;

/// Bytes fetched per system call: 32 nonces of 32 bytes.
const BLOCK: usize = 1024;

struct Pool {
    bytes: [u8; BLOCK],
    /// Bytes before this index are used up (and wiped).
    used: usize,
}

thread_local! {
    static POOL: RefCell<Pool> = const { RefCell::new(Pool { bytes: [0; BLOCK], used: BLOCK }) };
}

/// Fills `out` with random bytes from the operating system.
///
/// # Errors
/// When the operating system has no randomness to give.
pub fn fill(out: &mut [u8]) -> Result<(), getrandom::Error> {
    if out.len() > BLOCK / 4 {
        return getrandom::fill(out);
    }
    POOL.with(|pool| {
        let mut pool = pool.borrow_mut();
        if BLOCK - pool.used < out.len() {
            getrandom::fill(&mut pool.bytes)?;
            pool.used = 0;
        }
        let start = pool.used;
        let taken = &mut pool.bytes[start..start + out.len()];
        out.copy_from_slice(taken);
        taken.fill(0);
        pool.used += out.len();
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn no_two_draws_are_the_same_and_a_refill_keeps_them_apart() {
        let mut seen = std::collections::HashSet::new();
        // More draws than a block holds, so the pool is refilled on the way.
        for _ in 0..(3 * BLOCK / 24) {
            let mut nonce = [0u8; 24];
            fill(&mut nonce).unwrap();
            assert_ne!(nonce, [0u8; 24], "a wiped or never-filled byte was handed out");
            assert!(seen.insert(nonce), "the same bytes were handed out twice");
        }
        let mut large = [0u8; BLOCK];
        fill(&mut large).unwrap();
        assert!(large.iter().any(|&b| b != 0));
    }

    #[test]
    fn used_bytes_are_wiped_from_the_pool() {
        let mut first = [0u8; 32];
        fill(&mut first).unwrap();
        POOL.with(|pool| {
            let pool = pool.borrow();
            assert!(pool.used >= 32);
            assert!(pool.bytes[..pool.used].iter().all(|&b| b == 0));
        });
    }
}
