//! The guest's WASI preview 1: wasmtime-wasi's own implementation, with every call that
//! changes something under a preopened directory written to the node's audit log
//! ([`crate::audit`]).
//!
//! [`GuestWasi`] forwards each WASI function to [`WasiP1Ctx`] unchanged. When the instance
//! was given directories ([`GuestWasi::audited`]), the calls that create, open for
//! writing, truncate, rename, link, unlink or retime a file are logged as they return
//! (principal, operation, guest path, outcome), refused ones included. Writes through a
//! descriptor already opened for writing are not logged one by one: opening it was.

use std::collections::HashMap;

use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::p1::types::{self, Error, Fd};
use wasmtime_wasi::p1::wasi_snapshot_preview1::WasiSnapshotPreview1;
use wiggle::{GuestMemory, GuestPtr};

use crate::audit;

/// A guest's WASI context: what the store's linker serves its WASI imports from.
pub struct GuestWasi {
    ctx: WasiP1Ctx,
    audit: Option<FsAudit>,
}

/// Who the guest acts for, and the guest path of each open directory or file descriptor.
struct FsAudit {
    principal: String,
    paths: HashMap<u32, String>,
}

impl GuestWasi {
    /// A context whose file calls are not logged.
    pub fn new(ctx: WasiP1Ctx) -> Self {
        Self { ctx, audit: None }
    }

    /// A context whose changes under `preopens` (guest paths, in the order they were added
    /// to the context) are logged as done for `principal`.
    pub fn audited(ctx: WasiP1Ctx, principal: &str, preopens: &[String]) -> Self {
        // wasmtime-wasi numbers the preopens from 3, after stdin, stdout and stderr.
        let paths = (3u32..).zip(preopens.iter().cloned()).collect();
        Self {
            ctx,
            audit: Some(FsAudit {
                principal: principal.to_owned(),
                paths,
            }),
        }
    }

    fn path_of(&self, fd: Fd, memory: &GuestMemory<'_>, path: GuestPtr<str>) -> Option<String> {
        let audit = self.audit.as_ref()?;
        let base = audit
            .paths
            .get(&u32::from(fd))
            .cloned()
            .unwrap_or_else(|| format!("<fd {}>", u32::from(fd)));
        let rel = memory
            .as_cow_str(path)
            .map_or_else(|_| "<unreadable path>".into(), |p| p.into_owned());
        Some(join(&base, &rel))
    }

    fn fd_path(&self, fd: Fd) -> Option<String> {
        let audit = self.audit.as_ref()?;
        Some(
            audit
                .paths
                .get(&u32::from(fd))
                .cloned()
                .unwrap_or_else(|| format!("<fd {}>", u32::from(fd))),
        )
    }

    fn log<T>(&self, op: &str, path: Option<&str>, to: Option<&str>, result: &Result<T, Error>) {
        let Some(audit) = &self.audit else { return };
        let outcome = match result {
            Ok(_) => "ok".to_owned(),
            Err(e) => e.downcast_ref().map_or_else(
                || format!("failed: {e}"),
                |errno: &types::Errno| errno_name(*errno),
            ),
        };
        audit::file(&audit.principal, op, path.unwrap_or(""), to, &outcome);
    }
}

impl std::fmt::Debug for GuestWasi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GuestWasi")
            .field("audited", &self.audit.is_some())
            .finish_non_exhaustive()
    }
}

/// The errno, as C spells it (`EPERM`, `ENOENT`…).
fn errno_name(errno: types::Errno) -> String {
    format!("E{errno:?}").to_ascii_uppercase()
}

fn join(base: &str, rel: &str) -> String {
    if rel.starts_with('/') || base.is_empty() {
        rel.to_owned()
    } else if base.ends_with('/') {
        format!("{base}{rel}")
    } else {
        format!("{base}/{rel}")
    }
}

/// Whether a `path_open` may change the file: creating, truncating, opening for writing or
/// appending.
fn opens_for_change(oflags: types::Oflags, rights: types::Rights, fdflags: types::Fdflags) -> bool {
    oflags.intersects(types::Oflags::CREAT | types::Oflags::TRUNC)
        || rights.contains(types::Rights::FD_WRITE)
        || fdflags.contains(types::Fdflags::APPEND)
}

/// Writes the [`WasiSnapshotPreview1`] functions that [`GuestWasi`] hands to wasmtime-wasi
/// unchanged, each given as its signature without `&mut self, memory`; and those that
/// change what a descriptor (`fd`) or a path under one (`dirfd, path`) names, or make one
/// path name what another does (`src_fd, src_path => dest_fd, dest_path`, with the
/// source's lookup flags if the call takes them), logged as the audit operation named
/// after the last `=>`.
macro_rules! forward {
    () => {};
    (fn $name:ident($($arg:ident: $ty:ty),*) -> $ret:ty; $($rest:tt)*) => {
        fn $name(&mut self, memory: &mut GuestMemory<'_>, $($arg: $ty),*) -> $ret {
            self.ctx.$name(memory, $($arg),*)
        }
        forward!($($rest)*);
    };
    (async fn $name:ident($($arg:ident: $ty:ty),*) -> $ret:ty; $($rest:tt)*) => {
        async fn $name(&mut self, memory: &mut GuestMemory<'_>, $($arg: $ty),*) -> $ret {
            self.ctx.$name(memory, $($arg),*).await
        }
        forward!($($rest)*);
    };
    (async fn $name:ident(fd: Fd, $($arg:ident: $ty:ty),*) => $op:literal; $($rest:tt)*) => {
        async fn $name(
            &mut self,
            memory: &mut GuestMemory<'_>,
            fd: Fd,
            $($arg: $ty),*
        ) -> Result<(), Error> {
            let result = self.ctx.$name(memory, fd, $($arg),*).await;
            self.log($op, self.fd_path(fd).as_deref(), None, &result);
            result
        }
        forward!($($rest)*);
    };
    (async fn $name:ident(dirfd, path) => $op:literal; $($rest:tt)*) => {
        async fn $name(
            &mut self,
            memory: &mut GuestMemory<'_>,
            dirfd: Fd,
            path: GuestPtr<str>,
        ) -> Result<(), Error> {
            let target = self.path_of(dirfd, memory, path);
            let result = self.ctx.$name(memory, dirfd, path).await;
            self.log($op, target.as_deref(), None, &result);
            result
        }
        forward!($($rest)*);
    };
    (async fn $name:ident($src_fd:ident $([$flags:ident: $flags_ty:ty])?, $src:ident => $dest_fd:ident, $dest:ident) => $op:literal;
     $($rest:tt)*) => {
        async fn $name(
            &mut self,
            memory: &mut GuestMemory<'_>,
            $src_fd: Fd,
            $($flags: $flags_ty,)?
            $src: GuestPtr<str>,
            $dest_fd: Fd,
            $dest: GuestPtr<str>,
        ) -> Result<(), Error> {
            let from = self.path_of($src_fd, memory, $src);
            let to = self.path_of($dest_fd, memory, $dest);
            let result = self
                .ctx
                .$name(memory, $src_fd, $($flags,)? $src, $dest_fd, $dest)
                .await;
            self.log($op, from.as_deref(), to.as_deref(), &result);
            result
        }
        forward!($($rest)*);
    };
}

impl WasiSnapshotPreview1 for GuestWasi {
    fn set_hostcall_fuel(&mut self, fuel: usize) {
        self.ctx.set_hostcall_fuel(fuel);
    }

    fn fd_allocate(
        &mut self,
        memory: &mut GuestMemory<'_>,
        fd: Fd,
        offset: u64,
        len: u64,
    ) -> Result<(), Error> {
        let result = self.ctx.fd_allocate(memory, fd, offset, len);
        self.log("allocate", self.fd_path(fd).as_deref(), None, &result);
        result
    }

    async fn fd_close(&mut self, memory: &mut GuestMemory<'_>, fd: Fd) -> Result<(), Error> {
        let result = self.ctx.fd_close(memory, fd).await;
        if result.is_ok()
            && let Some(audit) = &mut self.audit
        {
            audit.paths.remove(&u32::from(fd));
        }
        result
    }

    async fn fd_renumber(
        &mut self,
        memory: &mut GuestMemory<'_>,
        from: Fd,
        to: Fd,
    ) -> Result<(), Error> {
        let result = self.ctx.fd_renumber(memory, from, to).await;
        if result.is_ok()
            && let Some(audit) = &mut self.audit
        {
            match audit.paths.remove(&u32::from(from)) {
                Some(path) => audit.paths.insert(u32::from(to), path),
                None => audit.paths.remove(&u32::from(to)),
            };
        }
        result
    }

    async fn path_filestat_set_times(
        &mut self,
        memory: &mut GuestMemory<'_>,
        dirfd: Fd,
        flags: types::Lookupflags,
        path: GuestPtr<str>,
        atim: u64,
        mtim: u64,
        fst_flags: types::Fstflags,
    ) -> Result<(), Error> {
        let target = self.path_of(dirfd, memory, path);
        let result = self
            .ctx
            .path_filestat_set_times(memory, dirfd, flags, path, atim, mtim, fst_flags)
            .await;
        self.log("set_times", target.as_deref(), None, &result);
        result
    }

    async fn path_open(
        &mut self,
        memory: &mut GuestMemory<'_>,
        dirfd: Fd,
        dirflags: types::Lookupflags,
        path: GuestPtr<str>,
        oflags: types::Oflags,
        fs_rights_base: types::Rights,
        fs_rights_inheriting: types::Rights,
        fdflags: types::Fdflags,
    ) -> Result<Fd, Error> {
        let target = self.path_of(dirfd, memory, path);
        let result = self
            .ctx
            .path_open(
                memory,
                dirfd,
                dirflags,
                path,
                oflags,
                fs_rights_base,
                fs_rights_inheriting,
                fdflags,
            )
            .await;
        if opens_for_change(oflags, fs_rights_base, fdflags) {
            self.log("open_for_write", target.as_deref(), None, &result);
        }
        if let (Ok(fd), Some(audit), Some(target)) = (&result, &mut self.audit, target) {
            audit.paths.insert(u32::from(*fd), target);
        }
        result
    }

    async fn path_symlink(
        &mut self,
        memory: &mut GuestMemory<'_>,
        src_path: GuestPtr<str>,
        dirfd: Fd,
        dest_path: GuestPtr<str>,
    ) -> Result<(), Error> {
        let link = self.path_of(dirfd, memory, dest_path);
        let target = memory.as_cow_str(src_path).map(|s| s.into_owned()).ok();
        let result = self
            .ctx
            .path_symlink(memory, src_path, dirfd, dest_path)
            .await;
        self.log("symlink", link.as_deref(), target.as_deref(), &result);
        result
    }

    forward! {
        fn args_get(argv: GuestPtr<GuestPtr<u8>>, argv_buf: GuestPtr<u8>) -> Result<(), Error>;
        fn args_sizes_get() -> Result<(u32, u32), Error>;
        fn environ_get(environ: GuestPtr<GuestPtr<u8>>, environ_buf: GuestPtr<u8>) -> Result<(), Error>;
        fn environ_sizes_get() -> Result<(u32, u32), Error>;
        fn clock_res_get(id: types::Clockid) -> Result<u64, Error>;
        fn clock_time_get(id: types::Clockid, precision: u64) -> Result<u64, Error>;
        async fn fd_advise(fd: Fd, offset: u64, len: u64, advice: types::Advice) -> Result<(), Error>;
        async fn fd_datasync(fd: Fd) -> Result<(), Error>;
        async fn fd_fdstat_get(fd: Fd) -> Result<types::Fdstat, Error>;
        fn fd_fdstat_set_flags(fd: Fd, flags: types::Fdflags) -> Result<(), Error>;
        fn fd_fdstat_set_rights(fd: Fd, base: types::Rights, inheriting: types::Rights) -> Result<(), Error>;
        async fn fd_filestat_get(fd: Fd) -> Result<types::Filestat, Error>;
        async fn fd_pread(fd: Fd, iovs: GuestPtr<[types::Iovec]>, offset: u64) -> Result<u32, Error>;
        fn fd_prestat_get(fd: Fd) -> Result<types::Prestat, Error>;
        fn fd_prestat_dir_name(fd: Fd, path: GuestPtr<u8>, len: u32) -> Result<(), Error>;
        async fn fd_pwrite(fd: Fd, ciovs: GuestPtr<[types::Ciovec]>, offset: u64) -> Result<u32, Error>;
        async fn fd_read(fd: Fd, iovs: GuestPtr<[types::Iovec]>) -> Result<u32, Error>;
        async fn fd_readdir(fd: Fd, buf: GuestPtr<u8>, buf_len: u32, cookie: u64) -> Result<u32, Error>;
        async fn fd_seek(fd: Fd, offset: i64, whence: types::Whence) -> Result<u64, Error>;
        async fn fd_sync(fd: Fd) -> Result<(), Error>;
        fn fd_tell(fd: Fd) -> Result<u64, Error>;
        async fn fd_write(fd: Fd, ciovs: GuestPtr<[types::Ciovec]>) -> Result<u32, Error>;
        async fn path_filestat_get(dirfd: Fd, flags: types::Lookupflags, path: GuestPtr<str>) -> Result<types::Filestat, Error>;
        async fn path_readlink(dirfd: Fd, path: GuestPtr<str>, buf: GuestPtr<u8>, buf_len: u32) -> Result<u32, Error>;
        async fn poll_oneoff(subs: GuestPtr<types::Subscription>, events: GuestPtr<types::Event>, nsubscriptions: u32) -> Result<u32, Error>;
        fn proc_exit(status: u32) -> wasmtime::Error;
        fn proc_raise(sig: types::Signal) -> Result<(), Error>;
        fn sched_yield() -> Result<(), Error>;
        fn random_get(buf: GuestPtr<u8>, buf_len: u32) -> Result<(), Error>;
        fn sock_accept(fd: Fd, flags: types::Fdflags) -> Result<Fd, Error>;
        fn sock_recv(fd: Fd, ri_data: GuestPtr<[types::Iovec]>, ri_flags: types::Riflags) -> Result<(u32, types::Roflags), Error>;
        fn sock_send(fd: Fd, si_data: GuestPtr<[types::Ciovec]>, si_flags: u16) -> Result<u32, Error>;
        fn sock_shutdown(fd: Fd, how: types::Sdflags) -> Result<(), Error>;
        async fn fd_filestat_set_size(fd: Fd, size: u64) => "truncate";
        async fn fd_filestat_set_times(fd: Fd, atim: u64, mtim: u64, flags: types::Fstflags) => "set_times";
        async fn path_create_directory(dirfd, path) => "mkdir";
        async fn path_remove_directory(dirfd, path) => "rmdir";
        async fn path_unlink_file(dirfd, path) => "unlink";
        async fn path_link(src_fd [src_flags: types::Lookupflags], src_path => target_fd, target_path) => "link";
        async fn path_rename(src_fd, src_path => dest_fd, dest_path) => "rename";
    }
}
