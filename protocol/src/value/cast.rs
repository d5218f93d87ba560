//! The crate's only unsafe code: two casts between a generic type and a byte buffer, once
//! [`unty::type_equal`] has said they are the same type. They let byte buffers skip
//! serde's one-`u8`-at-a-time path in the value (de)serializer, the way bincode does for
//! its own encoding.
//!
//! `type_equal` cannot tell types apart by lifetime only. `Vec<u8>` has no lifetime, so
//! for it the check is exact; for `&[u8]` and `&Vec<u8>` it may hide the lifetime, which
//! is why the slice handed out is borrowed from the value it was found in, never longer.
#![allow(unsafe_code)]

/// `bytes` as `T`, if `T` is `Vec<u8>`; otherwise `bytes` back.
pub(crate) fn bytes_as<T>(bytes: Vec<u8>) -> Result<T, Vec<u8>> {
    if !unty::type_equal::<T, Vec<u8>>() {
        return Err(bytes);
    }
    let bytes = std::mem::ManuallyDrop::new(bytes);
    // SAFETY: `T` is `Vec<u8>` (checked above, exactly: it has no lifetimes), and the
    // original is not dropped, so the buffer has one owner.
    Ok(unsafe { std::mem::transmute_copy::<Vec<u8>, T>(&bytes) })
}

/// The bytes `iter` refers to, if it is a `&[u8]` or a `&Vec<u8>` (what serde's impls for
/// byte buffers hand to `collect_seq`).
pub(crate) fn byte_slice<I>(iter: &I) -> Option<&[u8]> {
    if unty::type_equal::<I, &[u8]>() {
        // SAFETY: `I` is `&'a [u8]` for some `'a`; the slice is lent only for the borrow
        // of `iter`, which holds it, so it cannot outlive `'a`.
        Some(unsafe { *std::ptr::from_ref(iter).cast::<&[u8]>() })
    } else if unty::type_equal::<I, &Vec<u8>>() {
        // SAFETY: as above, with `&'a Vec<u8>`.
        Some(unsafe { *std::ptr::from_ref(iter).cast::<&Vec<u8>>() }.as_slice())
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn casts_only_what_is_a_byte_buffer() {
        assert_eq!(bytes_as::<Vec<u8>>(vec![1, 2]), Ok(vec![1, 2]));
        assert_eq!(bytes_as::<Vec<u16>>(vec![1, 2]), Err(vec![1, 2]));
        let v = vec![3u8, 4];
        assert_eq!(byte_slice(&&v), Some(&[3u8, 4][..]));
        assert_eq!(byte_slice(&&v[..1]), Some(&[3u8][..]));
        assert_eq!(
            byte_slice(&v),
            None,
            "a Vec by value is not what collect_seq gets"
        );
        assert_eq!(byte_slice(&&[1u16][..]), None);
    }
}
