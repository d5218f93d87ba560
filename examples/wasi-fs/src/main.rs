//! A WASI command program that uses `std::fs` through preopened directories, as any Rust
//! program would. The same modes and output as `wasi_fs.c` beside it:
//!
//! ```text
//! wasi-fs rw DIR          every std::fs call inside DIR, a read-write preopen (empty)
//! wasi-fs ro DIR          reads work and every mutation is refused in DIR, read-only
//!                         (holding hello.txt = "hello\n" and sub/a.txt)
//! wasi-fs escape DIR RO   no way out of DIR (read-write; holds out-rel -> ../secret.txt
//!                         and out-abs -> an absolute path) nor into RO for writing
//! wasi-fs none PATH       no preopen at all: PATH cannot be opened
//! wasi-fs exit            "out\n" and bytes 0xff 0x00 to stdout, "err\n" to stderr, exit 33
//! wasi-fs env NAME        prints NAME=its value, or NAME unset
//! ```
//!
//! Each check prints `ok NAME` or `FAIL NAME: why`; the exit status is the number of
//! failures. Built by tests/build.rs; the tests run it with `rwc run`.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

// WASI preview 1 errno values, as wasi_fs.c has them from <errno.h>.
use libc::{EACCES, EEXIST, ENOENT, ENOTCAPABLE, ENOTDIR, ENOTEMPTY, EPERM};

struct Checks {
    failures: u32,
}

impl Checks {
    /// `result` must be `Ok(true)`.
    fn check(&mut self, name: &str, result: io::Result<bool>) {
        match result {
            Ok(true) => println!("ok {name}"),
            Ok(false) => self.fail(name, "condition false".to_owned()),
            Err(e) => self.fail(name, format!("error {e}")),
        }
    }

    /// `result` must fail as a refused permission (EPERM, EACCES or ENOTCAPABLE).
    fn denied<T: std::fmt::Debug>(&mut self, name: &str, result: io::Result<T>) {
        match result {
            Err(e) if is_denial(&e) => println!("ok {name}"),
            Err(e) => self.fail(name, format!("error {e}, not a denial")),
            Ok(v) => self.fail(name, format!("succeeded: {v:?}")),
        }
    }

    /// `result` must fail with this WASI errno.
    fn fails_with<T: std::fmt::Debug>(&mut self, name: &str, result: io::Result<T>, errno: i32) {
        match result {
            Err(e) if e.raw_os_error() == Some(errno) => println!("ok {name}"),
            Err(e) => self.fail(name, format!("error {e}, wanted errno {errno}")),
            Ok(v) => self.fail(name, format!("succeeded: {v:?}")),
        }
    }

    fn fail(&mut self, name: &str, why: String) {
        println!("FAIL {name}: {why}");
        self.failures += 1;
    }
}

fn is_denial(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(EPERM | EACCES | ENOTCAPABLE))
}

fn read_write(c: &mut Checks, d: &Path) {
    let f = d.join("f.txt");
    c.check("File::create_new", (|| {
        let mut file = File::create_new(&f)?;
        file.write_all(b"0123456789")?;
        Ok(true)
    })());
    c.fails_with("create_new on an existing file", File::create_new(&f), EEXIST);
    c.check("seek and read", (|| {
        let mut file = OpenOptions::new().read(true).write(true).open(&f)?;
        let mut buf = [0; 3];
        file.seek(SeekFrom::Start(2))?;
        file.read_exact(&mut buf)?;
        let here = file.stream_position()?;
        let end = file.seek(SeekFrom::End(-1))?;
        Ok(&buf == b"234" && here == 5 && end == 9)
    })());
    c.check("set_len shrinks and grows", (|| {
        let file = OpenOptions::new().write(true).open(&f)?;
        file.set_len(4)?;
        let small = file.metadata()?.len();
        file.set_len(6)?;
        Ok(small == 4 && file.metadata()?.len() == 6)
    })());
    c.check("set_modified", (|| {
        let file = OpenOptions::new().write(true).open(&f)?;
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_200_000_000);
        file.set_modified(t)?;
        file.sync_all()?;
        Ok(fs::metadata(&f)?.modified()? == t)
    })());
    c.check("append", (|| {
        let mut file = OpenOptions::new().append(true).open(&f)?;
        file.write_all(b"xy")?;
        Ok(fs::read(&f)?.ends_with(b"xy") && fs::metadata(&f)?.len() == 8)
    })());
    c.check("fs::write truncates", (|| {
        fs::write(&f, "hello\n")?;
        Ok(fs::read_to_string(&f)? == "hello\n")
    })());
    c.fails_with("open a missing file", File::open(d.join("missing")), ENOENT);

    let sub = d.join("sub");
    c.check("create_dir_all", fs::create_dir_all(sub.join("deep")).map(|()| true));
    c.fails_with("create_dir on an existing directory", fs::create_dir(&sub), EEXIST);
    c.check("metadata of a directory", fs::metadata(&sub).map(|m| m.is_dir()));
    c.check("read_dir", (|| {
        let mut names: Vec<String> = fs::read_dir(d)?
            .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
            .collect::<io::Result<_>>()?;
        names.sort();
        Ok(names == ["f.txt", "sub"])
    })());
    c.check("read_dir file types", (|| {
        let kinds = fs::read_dir(d)?
            .map(|e| e.and_then(|e| e.file_type()).map(|t| t.is_dir()))
            .collect::<io::Result<Vec<_>>>()?;
        Ok(kinds.len() == 2 && kinds.iter().filter(|d| **d).count() == 1)
    })());

    let link = d.join("link");
    #[allow(deprecated)] // `soft_link` is the one stable way to make a symlink on WASI.
    let made = fs::soft_link("f.txt", &link);
    c.check("symlink", made.map(|()| true));
    c.check("read_link", fs::read_link(&link).map(|t| t == Path::new("f.txt")));
    c.check("symlink_metadata sees the link", fs::symlink_metadata(&link).map(|m| m.file_type().is_symlink()));
    c.check("metadata follows the link", fs::metadata(&link).map(|m| m.is_file() && m.len() == 6));
    c.check("read through the link", fs::read_to_string(&link).map(|s| s == "hello\n"));
    c.check("hard_link", (|| {
        fs::hard_link(&f, d.join("hard"))?;
        let same = fs::read_to_string(d.join("hard"))? == "hello\n";
        fs::remove_file(d.join("hard"))?;
        Ok(same)
    })());
    c.fails_with("open file/", File::open(d.join("f.txt/")), ENOTDIR);

    c.check("rename replaces a file", (|| {
        fs::write(d.join("g.txt"), "gee")?;
        fs::rename(d.join("g.txt"), &f)?;
        Ok(fs::read_to_string(&f)? == "gee" && !d.join("g.txt").exists())
    })());
    c.check("rename into a subdirectory", (|| {
        fs::rename(&f, sub.join("f.txt"))?;
        Ok(sub.join("f.txt").is_file())
    })());
    c.check("rename a directory", (|| {
        fs::rename(&sub, d.join("sub2"))?;
        Ok(d.join("sub2/f.txt").is_file())
    })());
    c.fails_with("remove_dir of a non-empty directory", fs::remove_dir(d.join("sub2")), ENOTEMPTY);
    c.check("remove_dir_all", fs::remove_dir_all(d.join("sub2")).map(|()| true));
    c.check("remove_file of a dangling symlink", fs::remove_file(&link).map(|()| true));
    c.check("directory is empty again", fs::read_dir(d).map(|mut it| it.next().is_none()));

    let start = Instant::now();
    std::thread::sleep(Duration::from_millis(20));
    c.check("sleep waits 20 ms", Ok(start.elapsed() >= Duration::from_millis(20)));
    c.check("clock is after 2020", Ok(SystemTime::now() > SystemTime::UNIX_EPOCH + Duration::from_secs(1_577_836_800)));
}

fn read_only(c: &mut Checks, d: &Path) {
    let f = d.join("hello.txt");
    c.check("read a file", fs::read_to_string(&f).map(|s| s == "hello\n"));
    c.check("metadata", fs::metadata(&f).map(|m| m.len() == 6));
    c.check("read_dir", fs::read_dir(d).map(|it| it.count() == 2));
    c.check("read in a subdirectory", fs::read_to_string(d.join("sub/a.txt")).map(|_| true));
    c.denied("open for writing", OpenOptions::new().write(true).open(&f));
    c.denied("open for append", OpenOptions::new().append(true).open(&f));
    c.denied("fs::write", fs::write(&f, "x"));
    c.denied("create", File::create(d.join("new.txt")));
    c.denied("rename", fs::rename(&f, d.join("moved.txt")));
    c.denied("remove_file", fs::remove_file(&f));
    c.denied("create_dir", fs::create_dir(d.join("newdir")));
    c.denied("remove_dir", fs::remove_dir(d.join("sub")));
    c.denied("hard_link", fs::hard_link(&f, d.join("hard")));
    #[allow(deprecated)]
    let made = fs::soft_link("hello.txt", d.join("link"));
    c.denied("symlink", made);
    c.denied("set_len", File::open(&f).and_then(|file| file.set_len(0)));
    c.denied("set_modified", File::open(&f).and_then(|file| file.set_modified(SystemTime::now())));
    c.check("nothing changed", fs::read_to_string(&f).map(|s| s == "hello\n" && !d.join("new.txt").exists()));
}

fn escape(c: &mut Checks, d: &Path, ro: &Path) {
    c.denied("open ../", File::open(d.join("../secret.txt")));
    c.denied("read_dir ..", fs::read_dir(d.join("..")));
    c.denied("create ../", File::create(d.join("../planted.txt")));
    // Rust's std finds no preopen for it: ENOENT (C's wasi-libc says ENOTCAPABLE).
    c.fails_with("open an absolute path outside the preopens", File::open("/etc/passwd"), ENOENT);
    c.denied("follow a relative symlink out", File::open(d.join("out-rel")));
    c.denied("follow an absolute symlink out", File::open(d.join("out-abs")));
    c.denied("write through a symlink out", fs::write(d.join("out-rel"), "x"));
    c.denied("hard-link from outside", fs::hard_link(d.join("../secret.txt"), d.join("hard")));
    c.denied("hard-link from a read-only preopen", fs::hard_link(ro.join("hello.txt"), d.join("hard2")));
    c.denied("rename from a read-only preopen", fs::rename(ro.join("hello.txt"), d.join("stolen")));
    c.check("no link was made", Ok(!d.join("hard").exists() && !d.join("hard2").exists()));
}

fn no_preopen(c: &mut Checks, path: &Path) {
    // Rust's std looks the path up among the preopens itself: none matches, ENOENT.
    c.fails_with("open without a preopen", File::open(path), ENOENT);
    c.fails_with("read_dir without a preopen", fs::read_dir(path), ENOENT);
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let mut c = Checks { failures: 0 };
    match args.iter().skip(1).map(String::as_str).collect::<Vec<_>>().as_slice() {
        ["exit"] => {
            println!("out");
            let _ = io::stdout().write_all(&[0xff, 0x00]);
            let _ = io::stdout().flush();
            eprintln!("err");
            std::process::exit(33);
        }
        ["env", name] => {
            match std::env::var(name) {
                Ok(v) => println!("{name}={v}"),
                Err(_) => println!("{name} unset"),
            }
            return;
        }
        ["rw", d] => read_write(&mut c, Path::new(d)),
        ["ro", d] => read_only(&mut c, Path::new(d)),
        ["escape", d, ro] => escape(&mut c, Path::new(d), Path::new(ro)),
        ["none", p] => no_preopen(&mut c, Path::new(p)),
        _ => {
            eprintln!("usage: {} rw DIR | ro DIR | escape DIR RO | none PATH | exit | env NAME",
                args.first().map_or("wasi-fs", String::as_str));
            std::process::exit(100);
        }
    }
    println!("{} failures", c.failures);
    std::process::exit(i32::try_from(c.failures.min(100)).unwrap_or(100));
}
