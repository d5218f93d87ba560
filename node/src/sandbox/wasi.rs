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

impl WasiSnapshotPreview1 for GuestWasi {
    fn set_hostcall_fuel(&mut self, fuel: usize) {
        self.ctx.set_hostcall_fuel(fuel);
    }

    fn args_get(
        &mut self,
        memory: &mut GuestMemory<'_>,
        argv: GuestPtr<GuestPtr<u8>>,
        argv_buf: GuestPtr<u8>,
    ) -> Result<(), Error> {
        self.ctx.args_get(memory, argv, argv_buf)
    }

    fn args_sizes_get(&mut self, memory: &mut GuestMemory<'_>) -> Result<(u32, u32), Error> {
        self.ctx.args_sizes_get(memory)
    }

    fn environ_get(
        &mut self,
        memory: &mut GuestMemory<'_>,
        environ: GuestPtr<GuestPtr<u8>>,
        environ_buf: GuestPtr<u8>,
    ) -> Result<(), Error> {
        self.ctx.environ_get(memory, environ, environ_buf)
    }

    fn environ_sizes_get(&mut self, memory: &mut GuestMemory<'_>) -> Result<(u32, u32), Error> {
        self.ctx.environ_sizes_get(memory)
    }

    fn clock_res_get(
        &mut self,
        memory: &mut GuestMemory<'_>,
        id: types::Clockid,
    ) -> Result<u64, Error> {
        self.ctx.clock_res_get(memory, id)
    }

    fn clock_time_get(
        &mut self,
        memory: &mut GuestMemory<'_>,
        id: types::Clockid,
        precision: u64,
    ) -> Result<u64, Error> {
        self.ctx.clock_time_get(memory, id, precision)
    }

    async fn fd_advise(
        &mut self,
        memory: &mut GuestMemory<'_>,
        fd: Fd,
        offset: u64,
        len: u64,
        advice: types::Advice,
    ) -> Result<(), Error> {
        self.ctx.fd_advise(memory, fd, offset, len, advice).await
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

    async fn fd_datasync(&mut self, memory: &mut GuestMemory<'_>, fd: Fd) -> Result<(), Error> {
        self.ctx.fd_datasync(memory, fd).await
    }

    async fn fd_fdstat_get(
        &mut self,
        memory: &mut GuestMemory<'_>,
        fd: Fd,
    ) -> Result<types::Fdstat, Error> {
        self.ctx.fd_fdstat_get(memory, fd).await
    }

    fn fd_fdstat_set_flags(
        &mut self,
        memory: &mut GuestMemory<'_>,
        fd: Fd,
        flags: types::Fdflags,
    ) -> Result<(), Error> {
        self.ctx.fd_fdstat_set_flags(memory, fd, flags)
    }

    fn fd_fdstat_set_rights(
        &mut self,
        memory: &mut GuestMemory<'_>,
        fd: Fd,
        base: types::Rights,
        inheriting: types::Rights,
    ) -> Result<(), Error> {
        self.ctx.fd_fdstat_set_rights(memory, fd, base, inheriting)
    }

    async fn fd_filestat_get(
        &mut self,
        memory: &mut GuestMemory<'_>,
        fd: Fd,
    ) -> Result<types::Filestat, Error> {
        self.ctx.fd_filestat_get(memory, fd).await
    }

    async fn fd_filestat_set_size(
        &mut self,
        memory: &mut GuestMemory<'_>,
        fd: Fd,
        size: u64,
    ) -> Result<(), Error> {
        let result = self.ctx.fd_filestat_set_size(memory, fd, size).await;
        self.log("truncate", self.fd_path(fd).as_deref(), None, &result);
        result
    }

    async fn fd_filestat_set_times(
        &mut self,
        memory: &mut GuestMemory<'_>,
        fd: Fd,
        atim: u64,
        mtim: u64,
        flags: types::Fstflags,
    ) -> Result<(), Error> {
        let result = self
            .ctx
            .fd_filestat_set_times(memory, fd, atim, mtim, flags)
            .await;
        self.log("set_times", self.fd_path(fd).as_deref(), None, &result);
        result
    }

    async fn fd_pread(
        &mut self,
        memory: &mut GuestMemory<'_>,
        fd: Fd,
        iovs: GuestPtr<[types::Iovec]>,
        offset: u64,
    ) -> Result<u32, Error> {
        self.ctx.fd_pread(memory, fd, iovs, offset).await
    }

    fn fd_prestat_get(
        &mut self,
        memory: &mut GuestMemory<'_>,
        fd: Fd,
    ) -> Result<types::Prestat, Error> {
        self.ctx.fd_prestat_get(memory, fd)
    }

    fn fd_prestat_dir_name(
        &mut self,
        memory: &mut GuestMemory<'_>,
        fd: Fd,
        path: GuestPtr<u8>,
        len: u32,
    ) -> Result<(), Error> {
        self.ctx.fd_prestat_dir_name(memory, fd, path, len)
    }

    async fn fd_pwrite(
        &mut self,
        memory: &mut GuestMemory<'_>,
        fd: Fd,
        ciovs: GuestPtr<[types::Ciovec]>,
        offset: u64,
    ) -> Result<u32, Error> {
        self.ctx.fd_pwrite(memory, fd, ciovs, offset).await
    }

    async fn fd_read(
        &mut self,
        memory: &mut GuestMemory<'_>,
        fd: Fd,
        iovs: GuestPtr<[types::Iovec]>,
    ) -> Result<u32, Error> {
        self.ctx.fd_read(memory, fd, iovs).await
    }

    async fn fd_readdir(
        &mut self,
        memory: &mut GuestMemory<'_>,
        fd: Fd,
        buf: GuestPtr<u8>,
        buf_len: u32,
        cookie: u64,
    ) -> Result<u32, Error> {
        self.ctx.fd_readdir(memory, fd, buf, buf_len, cookie).await
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

    async fn fd_seek(
        &mut self,
        memory: &mut GuestMemory<'_>,
        fd: Fd,
        offset: i64,
        whence: types::Whence,
    ) -> Result<u64, Error> {
        self.ctx.fd_seek(memory, fd, offset, whence).await
    }

    async fn fd_sync(&mut self, memory: &mut GuestMemory<'_>, fd: Fd) -> Result<(), Error> {
        self.ctx.fd_sync(memory, fd).await
    }

    fn fd_tell(&mut self, memory: &mut GuestMemory<'_>, fd: Fd) -> Result<u64, Error> {
        self.ctx.fd_tell(memory, fd)
    }

    async fn fd_write(
        &mut self,
        memory: &mut GuestMemory<'_>,
        fd: Fd,
        ciovs: GuestPtr<[types::Ciovec]>,
    ) -> Result<u32, Error> {
        self.ctx.fd_write(memory, fd, ciovs).await
    }

    async fn path_create_directory(
        &mut self,
        memory: &mut GuestMemory<'_>,
        dirfd: Fd,
        path: GuestPtr<str>,
    ) -> Result<(), Error> {
        let target = self.path_of(dirfd, memory, path);
        let result = self.ctx.path_create_directory(memory, dirfd, path).await;
        self.log("mkdir", target.as_deref(), None, &result);
        result
    }

    async fn path_filestat_get(
        &mut self,
        memory: &mut GuestMemory<'_>,
        dirfd: Fd,
        flags: types::Lookupflags,
        path: GuestPtr<str>,
    ) -> Result<types::Filestat, Error> {
        self.ctx.path_filestat_get(memory, dirfd, flags, path).await
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

    async fn path_link(
        &mut self,
        memory: &mut GuestMemory<'_>,
        src_fd: Fd,
        src_flags: types::Lookupflags,
        src_path: GuestPtr<str>,
        target_fd: Fd,
        target_path: GuestPtr<str>,
    ) -> Result<(), Error> {
        let from = self.path_of(src_fd, memory, src_path);
        let to = self.path_of(target_fd, memory, target_path);
        let result = self
            .ctx
            .path_link(memory, src_fd, src_flags, src_path, target_fd, target_path)
            .await;
        self.log("link", from.as_deref(), to.as_deref(), &result);
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

    async fn path_readlink(
        &mut self,
        memory: &mut GuestMemory<'_>,
        dirfd: Fd,
        path: GuestPtr<str>,
        buf: GuestPtr<u8>,
        buf_len: u32,
    ) -> Result<u32, Error> {
        self.ctx
            .path_readlink(memory, dirfd, path, buf, buf_len)
            .await
    }

    async fn path_remove_directory(
        &mut self,
        memory: &mut GuestMemory<'_>,
        dirfd: Fd,
        path: GuestPtr<str>,
    ) -> Result<(), Error> {
        let target = self.path_of(dirfd, memory, path);
        let result = self.ctx.path_remove_directory(memory, dirfd, path).await;
        self.log("rmdir", target.as_deref(), None, &result);
        result
    }

    async fn path_rename(
        &mut self,
        memory: &mut GuestMemory<'_>,
        src_fd: Fd,
        src_path: GuestPtr<str>,
        dest_fd: Fd,
        dest_path: GuestPtr<str>,
    ) -> Result<(), Error> {
        let from = self.path_of(src_fd, memory, src_path);
        let to = self.path_of(dest_fd, memory, dest_path);
        let result = self
            .ctx
            .path_rename(memory, src_fd, src_path, dest_fd, dest_path)
            .await;
        self.log("rename", from.as_deref(), to.as_deref(), &result);
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

    async fn path_unlink_file(
        &mut self,
        memory: &mut GuestMemory<'_>,
        dirfd: Fd,
        path: GuestPtr<str>,
    ) -> Result<(), Error> {
        let target = self.path_of(dirfd, memory, path);
        let result = self.ctx.path_unlink_file(memory, dirfd, path).await;
        self.log("unlink", target.as_deref(), None, &result);
        result
    }

    async fn poll_oneoff(
        &mut self,
        memory: &mut GuestMemory<'_>,
        subs: GuestPtr<types::Subscription>,
        events: GuestPtr<types::Event>,
        nsubscriptions: u32,
    ) -> Result<u32, Error> {
        self.ctx
            .poll_oneoff(memory, subs, events, nsubscriptions)
            .await
    }

    fn proc_exit(&mut self, memory: &mut GuestMemory<'_>, status: u32) -> wasmtime::Error {
        self.ctx.proc_exit(memory, status)
    }

    fn proc_raise(
        &mut self,
        memory: &mut GuestMemory<'_>,
        sig: types::Signal,
    ) -> Result<(), Error> {
        self.ctx.proc_raise(memory, sig)
    }

    fn sched_yield(&mut self, memory: &mut GuestMemory<'_>) -> Result<(), Error> {
        self.ctx.sched_yield(memory)
    }

    fn random_get(
        &mut self,
        memory: &mut GuestMemory<'_>,
        buf: GuestPtr<u8>,
        buf_len: u32,
    ) -> Result<(), Error> {
        self.ctx.random_get(memory, buf, buf_len)
    }

    fn sock_accept(
        &mut self,
        memory: &mut GuestMemory<'_>,
        fd: Fd,
        flags: types::Fdflags,
    ) -> Result<Fd, Error> {
        self.ctx.sock_accept(memory, fd, flags)
    }

    fn sock_recv(
        &mut self,
        memory: &mut GuestMemory<'_>,
        fd: Fd,
        ri_data: GuestPtr<[types::Iovec]>,
        ri_flags: types::Riflags,
    ) -> Result<(u32, types::Roflags), Error> {
        self.ctx.sock_recv(memory, fd, ri_data, ri_flags)
    }

    fn sock_send(
        &mut self,
        memory: &mut GuestMemory<'_>,
        fd: Fd,
        si_data: GuestPtr<[types::Ciovec]>,
        si_flags: u16,
    ) -> Result<u32, Error> {
        self.ctx.sock_send(memory, fd, si_data, si_flags)
    }

    fn sock_shutdown(
        &mut self,
        memory: &mut GuestMemory<'_>,
        fd: Fd,
        how: types::Sdflags,
    ) -> Result<(), Error> {
        self.ctx.sock_shutdown(memory, fd, how)
    }
}
