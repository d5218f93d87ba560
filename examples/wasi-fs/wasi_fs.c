/* A WASI command program that exercises the preview 1 file API through preopened
 * directories, the way `wasmtime run --dir` serves them. Built by tests/build.rs with
 * clang for wasm32-wasi (wasi-libc).
 *
 *   wasi_fs rw DIR          every file call inside DIR, a read-write preopen (empty)
 *   wasi_fs ro DIR          reads work and every mutation is refused in DIR, read-only
 *                           (holding hello.txt = "hello\n" and sub/a.txt)
 *   wasi_fs escape DIR RO   no way out of DIR (read-write; holds out-rel -> ../secret.txt
 *                           and out-abs -> an absolute path) nor into RO for writing
 *   wasi_fs none PATH       no preopen at all: PATH cannot be opened
 *   wasi_fs exit            "out\n" and bytes 0xff 0x00 to stdout, "err\n" to stderr,
 *                           then exit(33)
 *   wasi_fs env NAME        prints NAME=its value, or NAME unset
 *
 * Each check prints `ok NAME` or `FAIL NAME: why`; the exit status is the number of
 * failures (0: all passed). A test asserts both, so a check that did not run is noticed.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <wasi/api.h>

static int failures;

static void ok(const char *name) { printf("ok %s\n", name); }

static void fail(const char *name, const char *why) {
    printf("FAIL %s: %s (errno %d %s)\n", name, why, errno, strerror(errno));
    failures++;
}

/* `cond` must hold. */
#define CHECK(name, cond)                                                                  \
    do {                                                                                   \
        errno = 0;                                                                         \
        if (cond) ok(name); else fail(name, #cond);                                        \
    } while (0)

/* `call` must fail (return -1) with one of the denial errnos. */
static int denied_errno(int e) { return e == EPERM || e == EACCES || e == ENOTCAPABLE; }
#define DENIED(name, call)                                                                 \
    do {                                                                                   \
        errno = 0;                                                                         \
        long rc_ = (long)(call);                                                           \
        if (rc_ == -1 && denied_errno(errno)) ok(name);                                    \
        else { char why_[64]; snprintf(why_, sizeof why_, "rc %ld, not denied", rc_);      \
               fail(name, why_); }                                                         \
    } while (0)

/* `call` must fail with exactly errno `e`. */
#define FAILS_WITH(name, call, e)                                                          \
    do {                                                                                   \
        errno = 0;                                                                         \
        long rc_ = (long)(call);                                                           \
        if (rc_ == -1 && errno == (e)) ok(name);                                           \
        else { char why_[64]; snprintf(why_, sizeof why_, "rc %ld, wanted errno %d", rc_,  \
               (e)); fail(name, why_); }                                                   \
    } while (0)

/* DIR/NAME, in a fresh allocation (a short-lived test program leaks it). */
static const char *in(const char *dir, const char *name) {
    char *p = malloc(strlen(dir) + strlen(name) + 2);
    if (!p) abort();
    sprintf(p, "%s/%s", dir, name);
    return p;
}

static int write_all(int fd, const char *s) {
    size_t n = strlen(s);
    return write(fd, s, n) == (ssize_t)n ? 0 : -1;
}

static int read_file(const char *path, char *buf, size_t cap) {
    int fd = open(path, O_RDONLY);
    if (fd < 0) return -1;
    ssize_t n = read(fd, buf, cap - 1);
    close(fd);
    if (n < 0) return -1;
    buf[n] = 0;
    return (int)n;
}

static int dir_has(const char *dir, const char *name) {
    DIR *d = opendir(dir);
    if (!d) return 0;
    struct dirent *e;
    int found = 0;
    while ((e = readdir(d))) {
        if (strcmp(e->d_name, name) == 0) found = 1;
    }
    closedir(d);
    return found;
}

static long ms_between(struct timespec a, struct timespec b) {
    return (b.tv_sec - a.tv_sec) * 1000 + (b.tv_nsec - a.tv_nsec) / 1000000;
}

static void read_write(const char *d) {
    char buf[256];
    const char *f = in(d, "f.txt");

    /* path_open: create, exclusive, truncate, append, directory, nofollow */
    int fd = open(f, O_RDWR | O_CREAT | O_EXCL, 0644);
    CHECK("open O_CREAT|O_EXCL", fd >= 0);
    FAILS_WITH("open O_EXCL on an existing file", open(f, O_RDWR | O_CREAT | O_EXCL, 0644),
               EEXIST);
    CHECK("write", write_all(fd, "0123456789") == 0);

    /* fd_seek / fd_tell */
    CHECK("lseek SEEK_CUR is the tell", lseek(fd, 0, SEEK_CUR) == 10);
    CHECK("lseek SEEK_SET", lseek(fd, 2, SEEK_SET) == 2);
    CHECK("read after seek", read(fd, buf, 3) == 3 && memcmp(buf, "234", 3) == 0);
    CHECK("lseek SEEK_END", lseek(fd, -1, SEEK_END) == 9);
    FAILS_WITH("lseek before the start", lseek(fd, -100, SEEK_SET), EINVAL);

    /* fd_pread / fd_pwrite leave the offset alone */
    CHECK("pwrite", pwrite(fd, "AB", 2, 4) == 2);
    CHECK("pread", pread(fd, buf, 4, 3) == 4 && memcmp(buf, "3AB6", 4) == 0);
    CHECK("offset unchanged by pread/pwrite", lseek(fd, 0, SEEK_CUR) == 9);

    /* fd_filestat_get, fd_filestat_set_size (ftruncate) */
    struct stat st;
    CHECK("fstat size", fstat(fd, &st) == 0 && st.st_size == 10 && S_ISREG(st.st_mode));
    CHECK("ftruncate shrinks", ftruncate(fd, 4) == 0 && fstat(fd, &st) == 0 && st.st_size == 4);
    CHECK("ftruncate grows", ftruncate(fd, 6) == 0 && fstat(fd, &st) == 0 && st.st_size == 6);

    /* fd_advise; fd_allocate is refused by wasmtime-wasi (ENOTSUP), as under wasmtime run */
    CHECK("posix_fadvise", posix_fadvise(fd, 0, 6, POSIX_FADV_SEQUENTIAL) == 0);
    CHECK("posix_fallocate is ENOTSUP", posix_fallocate(fd, 0, 100) == ENOTSUP);

    /* fd_filestat_set_times (futimens) and path_filestat_set_times (utimensat) */
    struct timespec times[2] = {{.tv_sec = 1000000000, .tv_nsec = 0},
                                {.tv_sec = 1200000000, .tv_nsec = 0}};
    CHECK("futimens", futimens(fd, times) == 0 && fstat(fd, &st) == 0 &&
                          st.st_mtim.tv_sec == 1200000000);
    times[1].tv_sec = 1300000000;
    CHECK("utimensat", utimensat(AT_FDCWD, f, times, 0) == 0 && stat(f, &st) == 0 &&
                           st.st_mtim.tv_sec == 1300000000 && st.st_atim.tv_sec == 1000000000);

    /* fd_fdstat_set_flags: O_APPEND on an open descriptor */
    CHECK("fcntl F_SETFL O_APPEND", fcntl(fd, F_SETFL, O_APPEND) == 0);
    CHECK("fcntl F_GETFL has O_APPEND", (fcntl(fd, F_GETFL) & O_APPEND) != 0);
    lseek(fd, 0, SEEK_SET);
    CHECK("append writes at the end", write_all(fd, "xy") == 0 && fstat(fd, &st) == 0 &&
                                          st.st_size == 8);
    close(fd);

    fd = open(f, O_WRONLY | O_APPEND);
    CHECK("open O_APPEND", fd >= 0 && write_all(fd, "z") == 0);
    close(fd);
    CHECK("stat after append", stat(f, &st) == 0 && st.st_size == 9);
    fd = open(f, O_WRONLY | O_TRUNC);
    CHECK("open O_TRUNC empties", fd >= 0 && fstat(fd, &st) == 0 && st.st_size == 0);
    CHECK("write after truncate", write_all(fd, "hello\n") == 0);
    close(fd);
    CHECK("read back", read_file(f, buf, sizeof buf) == 6 && strcmp(buf, "hello\n") == 0);
    FAILS_WITH("open O_DIRECTORY on a file", open(f, O_RDONLY | O_DIRECTORY), ENOTDIR);
    FAILS_WITH("open a missing file", open(in(d, "missing"), O_RDONLY), ENOENT);

    /* path_create_directory, fd_readdir, path_filestat_get */
    const char *sub = in(d, "sub");
    CHECK("mkdir", mkdir(sub, 0755) == 0);
    FAILS_WITH("mkdir an existing directory", mkdir(sub, 0755), EEXIST);
    CHECK("stat a directory", stat(sub, &st) == 0 && S_ISDIR(st.st_mode));
    fd = open(sub, O_RDONLY | O_DIRECTORY);
    CHECK("open O_DIRECTORY", fd >= 0);
    int sub_file = openat(fd, "inner.txt", O_WRONLY | O_CREAT, 0644);
    CHECK("openat relative to an opened directory", sub_file >= 0 && write_all(sub_file, "in") == 0);
    close(sub_file);
    close(fd);
    CHECK("readdir lists a file", dir_has(d, "f.txt"));
    CHECK("readdir lists a directory", dir_has(d, "sub"));
    CHECK("readdir of a subdirectory", dir_has(sub, "inner.txt"));

    /* path_symlink / path_readlink, lstat vs stat, O_NOFOLLOW */
    const char *lnk = in(d, "link");
    CHECK("symlink", symlink("f.txt", lnk) == 0);
    ssize_t n = readlink(lnk, buf, sizeof buf);
    CHECK("readlink", n == 5 && memcmp(buf, "f.txt", 5) == 0);
    CHECK("lstat sees the link", lstat(lnk, &st) == 0 && S_ISLNK(st.st_mode));
    CHECK("stat follows the link", stat(lnk, &st) == 0 && S_ISREG(st.st_mode) && st.st_size == 6);
    CHECK("open follows the link", read_file(lnk, buf, sizeof buf) == 6);
    FAILS_WITH("open O_NOFOLLOW on a link", open(lnk, O_RDONLY | O_NOFOLLOW), ELOOP);
    FAILS_WITH("readlink of a file", readlink(f, buf, sizeof buf), EINVAL);

    /* hard links inside the preopen work */
    const char *hard = in(d, "hard");
    CHECK("link", link(f, hard) == 0 && stat(hard, &st) == 0 && st.st_nlink == 2);
    CHECK("unlink the hard link", unlink(hard) == 0);

    /* trailing-slash rules */
    FAILS_WITH("open file/ is ENOTDIR", open(in(d, "f.txt/"), O_RDONLY), ENOTDIR);
    FAILS_WITH("stat file/ is ENOTDIR", stat(in(d, "f.txt/"), &st), ENOTDIR);
    CHECK("stat dir/ works", stat(in(d, "sub/"), &st) == 0 && S_ISDIR(st.st_mode));
    CHECK("mkdir dir/ works", mkdir(in(d, "made/"), 0755) == 0);
    /* rmdir("dir/") is EINVAL in wasmtime-wasi, unlike Linux: not checked. */
    CHECK("rmdir dir", rmdir(in(d, "made")) == 0);
    FAILS_WITH("unlink file/ is ENOTDIR", unlink(in(d, "f.txt/")), ENOTDIR);
    FAILS_WITH("create file/ is refused", open(in(d, "new.txt/"), O_WRONLY | O_CREAT, 0644),
               EISDIR);

    /* path_rename: file over file, into a directory, directory itself */
    int g = open(in(d, "g.txt"), O_WRONLY | O_CREAT, 0644);
    CHECK("create g.txt", g >= 0 && write_all(g, "gee") == 0);
    close(g);
    CHECK("rename replaces a file", rename(in(d, "g.txt"), f) == 0 &&
                                        read_file(f, buf, sizeof buf) == 3 &&
                                        strcmp(buf, "gee") == 0);
    CHECK("old name is gone", access(in(d, "g.txt"), F_OK) == -1 && errno == ENOENT);
    CHECK("rename into a subdirectory", rename(f, in(d, "sub/f.txt")) == 0);
    CHECK("rename a directory", rename(sub, in(d, "sub2")) == 0 &&
                                    stat(in(d, "sub2/f.txt"), &st) == 0);
    FAILS_WITH("rename a missing file", rename(in(d, "nope"), in(d, "x")), ENOENT);

    /* path_unlink_file, path_remove_directory */
    FAILS_WITH("rmdir a non-empty directory", rmdir(in(d, "sub2")), ENOTEMPTY);
    FAILS_WITH("unlink a directory", unlink(in(d, "sub2")), EISDIR);
    CHECK("unlink files", unlink(in(d, "sub2/f.txt")) == 0 &&
                              unlink(in(d, "sub2/inner.txt")) == 0);
    CHECK("rmdir", rmdir(in(d, "sub2")) == 0);
    CHECK("unlink the symlink, not its target", unlink(lnk) == 0);
    CHECK("directory is empty again", !dir_has(d, "sub2") && !dir_has(d, "link"));

    /* poll_oneoff on clocks: nanosleep and poll() with a timeout */
    struct timespec t0, t1, nap = {.tv_sec = 0, .tv_nsec = 20 * 1000000};
    clock_gettime(CLOCK_MONOTONIC, &t0);
    CHECK("nanosleep", nanosleep(&nap, NULL) == 0);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    CHECK("nanosleep slept 20 ms", ms_between(t0, t1) >= 20);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    CHECK("poll with a timeout and no fds", poll(NULL, 0, 20) == 0);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    CHECK("poll waited 20 ms", ms_between(t0, t1) >= 20);
    CHECK("realtime clock is after 2020", time(NULL) > 1577836800);
}

static void read_only(const char *d) {
    char buf[256];
    struct stat st;
    const char *f = in(d, "hello.txt");
    CHECK("read a file", read_file(f, buf, sizeof buf) == 6 && strcmp(buf, "hello\n") == 0);
    CHECK("stat a file", stat(f, &st) == 0 && st.st_size == 6);
    CHECK("readdir", dir_has(d, "hello.txt") && dir_has(d, "sub"));
    CHECK("read in a subdirectory", read_file(in(d, "sub/a.txt"), buf, sizeof buf) >= 0);
    int fd = open(f, O_RDONLY);
    CHECK("pread", fd >= 0 && pread(fd, buf, 3, 1) == 3 && memcmp(buf, "ell", 3) == 0);
    FAILS_WITH("write to a descriptor opened for reading", write(fd, "x", 1), EBADF);
    DENIED("ftruncate", ftruncate(fd, 0));
    DENIED("futimens", futimens(fd, NULL));
    close(fd);
    DENIED("open for writing", open(f, O_WRONLY));
    DENIED("open for reading and writing", open(f, O_RDWR));
    DENIED("open O_APPEND", open(f, O_WRONLY | O_APPEND));
    DENIED("open O_TRUNC", open(f, O_RDONLY | O_TRUNC));
    DENIED("create a file", open(in(d, "new.txt"), O_WRONLY | O_CREAT, 0644));
    DENIED("truncate", truncate(f, 0));
    DENIED("rename", rename(f, in(d, "moved.txt")));
    DENIED("unlink", unlink(f));
    DENIED("mkdir", mkdir(in(d, "newdir"), 0755));
    DENIED("rmdir", rmdir(in(d, "sub")));
    DENIED("symlink", symlink("hello.txt", in(d, "link")));
    DENIED("link", link(f, in(d, "hard")));
    DENIED("utimensat", utimensat(AT_FDCWD, f, NULL, 0));
    CHECK("nothing changed", read_file(f, buf, sizeof buf) == 6 && strcmp(buf, "hello\n") == 0 &&
                                 !dir_has(d, "new.txt") && !dir_has(d, "newdir"));
}

static void escape(const char *d, const char *ro) {
    char buf[256];
    struct stat st;
    DENIED("open ../", open(in(d, "../secret.txt"), O_RDONLY));
    CHECK("mkdir x", mkdir(in(d, "x"), 0755) == 0);
    DENIED("open x/../../", open(in(d, "x/../../secret.txt"), O_RDONLY));
    DENIED("stat ../", stat(in(d, ".."), &st));
    DENIED("create ../", open(in(d, "../planted.txt"), O_WRONLY | O_CREAT, 0644));
    FAILS_WITH("open an absolute path outside the preopens", open("/etc/passwd", O_RDONLY),
               ENOTCAPABLE);
    DENIED("follow a relative symlink out", open(in(d, "out-rel"), O_RDONLY));
    DENIED("follow an absolute symlink out", open(in(d, "out-abs"), O_RDONLY));
    DENIED("write through a symlink out", open(in(d, "out-rel"), O_WRONLY | O_TRUNC));
    DENIED("stat through a symlink out", stat(in(d, "out-rel"), &st));
    /* A link the guest makes itself is no way out either. */
    CHECK("create a symlink to ../", symlink("../secret.txt", in(d, "mine")) == 0);
    DENIED("follow it", open(in(d, "mine"), O_RDONLY));
    DENIED("symlink to an absolute path", symlink("/etc/passwd", in(d, "abs")));
    DENIED("rename out", rename(in(d, "mine"), in(d, "../moved")));
    DENIED("hard-link from outside", link(in(d, "../secret.txt"), in(d, "hard")));
    /* wasmtime-wasi does not follow symlinks in path_link at all. */
    FAILS_WITH("hard-link through a symlink out", linkat(AT_FDCWD, in(d, "out-rel"), AT_FDCWD,
                                                     in(d, "hard2"), AT_SYMLINK_FOLLOW), EINVAL);
    /* Hard-linking a read-only file into the read-write directory would make it writable. */
    DENIED("hard-link from a read-only preopen", link(in(ro, "hello.txt"), in(d, "hard3")));
    DENIED("rename from a read-only preopen", rename(in(ro, "hello.txt"), in(d, "stolen")));
    DENIED("rename into a read-only preopen", rename(in(d, "mine"), in(ro, "planted")));
    CHECK("read-only file untouched", read_file(in(ro, "hello.txt"), buf, sizeof buf) == 6);
    CHECK("no link was made", !dir_has(d, "hard") && !dir_has(d, "hard2") && !dir_has(d, "hard3"));
}

static void no_preopen(const char *path) {
    __wasi_prestat_t pre;
    CHECK("fd 3 is no preopen", __wasi_fd_prestat_get(3, &pre) == __WASI_ERRNO_BADF);
    FAILS_WITH("open without a preopen", open(path, O_RDONLY), ENOTCAPABLE);
    FAILS_WITH("opendir without a preopen", (opendir(path) ? 0 : -1), ENOTCAPABLE);
}

int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "";
    if (strcmp(mode, "exit") == 0) {
        fputs("out\n", stdout);
        fwrite("\xff\x00", 1, 2, stdout);
        fputs("err\n", stderr);
        exit(33);
    } else if (strcmp(mode, "env") == 0 && argc == 3) {
        const char *v = getenv(argv[2]);
        if (v) printf("%s=%s\n", argv[2], v); else printf("%s unset\n", argv[2]);
        return 0;
    } else if (strcmp(mode, "rw") == 0 && argc == 3) {
        read_write(argv[2]);
    } else if (strcmp(mode, "ro") == 0 && argc == 3) {
        read_only(argv[2]);
    } else if (strcmp(mode, "escape") == 0 && argc == 4) {
        escape(argv[2], argv[3]);
    } else if (strcmp(mode, "none") == 0 && argc == 3) {
        no_preopen(argv[2]);
    } else {
        fprintf(stderr, "usage: %s rw DIR | ro DIR | escape DIR RO | none PATH | exit | env NAME\n",
                argc > 0 ? argv[0] : "wasi_fs");
        return 100;
    }
    printf("%d failures\n", failures);
    return failures > 100 ? 100 : failures;
}
