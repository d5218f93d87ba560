//! Bytes in and out of a guest, every way they travel: as parameters and results of type
//! `Vec<u8>`, `Box<[u8]>` and `ByteBuf`, through a client callback and a guest object. The
//! bytes tests and benchmark use it.

use rwc_guest::{ByteBuf, Error, Object, Remote, export, object};
use sha2::{Digest, Sha256};

/// How many bytes `data` holds.
#[export]
fn len(data: Vec<u8>) -> u64 {
    data.len() as u64
}

/// `n` bytes of the pattern 0, 1, …, 250, 0, 1, …
#[export]
fn fill(n: u32) -> Vec<u8> {
    let pattern: Vec<u8> = (0..=250).collect();
    let n = n as usize;
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let take = (n - out.len()).min(pattern.len());
        out.extend_from_slice(&pattern[..take]);
    }
    out
}

/// `data`, unchanged.
#[export]
fn echo(data: Vec<u8>) -> Vec<u8> {
    data
}

/// The SHA-256 digest of `data` (32 bytes).
#[export]
fn sha256(data: Vec<u8>) -> Vec<u8> {
    Sha256::digest(&data).to_vec()
}

/// `data` reversed, taken and returned as a `Box<[u8]>`.
#[export]
fn reverse(data: Box<[u8]>) -> Box<[u8]> {
    let mut data = data;
    data.reverse();
    data
}

/// `data` with `byte` appended, taken and returned as a `ByteBuf`.
#[export]
fn append(data: ByteBuf, byte: u8) -> ByteBuf {
    let mut data = data;
    data.push(byte);
    data
}

/// Hands `data` to the client's callback `cb` and returns what the callback answers.
#[export]
fn through(cb: Remote, data: Vec<u8>) -> Result<Vec<u8>, Error> {
    cb.call("call", (data,))
}

/// A new, empty buffer that lives in the guest.
#[export]
fn new_buffer() -> Object {
    Object::new(Buffer::default())
}

/// Bytes kept in the guest between calls.
#[derive(Default)]
pub struct Buffer {
    data: Vec<u8>,
}

#[object]
impl Buffer {
    /// Appends `data`; returns the new length.
    pub fn push(&mut self, data: Vec<u8>) -> u64 {
        self.data.extend_from_slice(&data);
        self.data.len() as u64
    }

    /// Everything pushed so far, leaving the buffer empty.
    pub fn take(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.data)
    }
}
