//! What an installed program prints for its version, asked once per build of it. Starting a
//! server program only to ask its version costs a process and its dynamic linking (about 25 ms
//! for `postgres --version`, 36 ms for `mariadbd --version`, 10 ms for Redis's on this machine
//! kind), at every command; the answer is kept in the cache root instead, beside the program's
//! size, modification time and inode, and asked again when any of them changed (an upgrade).

use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::{fingerprint, printed, slot::cache_root, Flavor};

/// What `program args…` prints on success (started as `arg0` when given: Debian's Redis
/// server answers to its name), from the cache when the program is the one that printed it; an
/// `Err` is the failure's text, as [`printed`] gives it. The cache is only a shortcut: any
/// trouble with it (no cache root, a file cut short) asks the program.
pub(crate) fn printed_once(
    flavor: &'static Flavor,
    program: &Path,
    arg0: Option<&str>,
    args: &[&str],
) -> Result<String, String> {
    let ask = || {
        let mut command = Command::new(program);
        if let Some(arg0) = arg0 {
            command.arg0(arg0);
        }
        command.args(args);
        printed(command)
    };
    let Some((file, stamp)) = kept_at(flavor, program, arg0, args) else {
        return ask();
    };
    if let Some(text) = std::fs::read_to_string(&file)
        .ok()
        .and_then(|kept| read(&kept, &stamp))
    {
        return Ok(text);
    }
    let text = ask()?;
    // Written whole or read as garbage: two writers at once write the same bytes.
    if let Some(dir) = file.parent() {
        let _ = std::fs::create_dir_all(dir);
        let _ = std::fs::write(&file, format!("{stamp}\n{}\n{END}\n", text.len()) + &text);
        forget_the_gone(dir);
    }
    Ok(text)
}

/// Removes the answers of programs that are gone (an uninstalled version, a test's own
/// program in a temporary directory), so the cache does not grow with them.
fn forget_the_gone(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let program = std::fs::read_to_string(&path).ok().and_then(|kept| {
            let stamp = kept.lines().next()?.to_string();
            // The path, then the size, inode and time: the path may hold spaces.
            let mut parts = stamp.rsplitn(4, ' ');
            parts.nth(3).map(PathBuf::from)
        });
        if program.is_none_or(|program| !program.exists()) {
            let _ = std::fs::remove_file(&path);
        }
    }
}

const END: &str = "printed";

/// Where the answer for `program args…` is kept, and the stamp of the program that gave it.
fn kept_at(
    flavor: &'static Flavor,
    program: &Path,
    arg0: Option<&str>,
    args: &[&str],
) -> Option<(PathBuf, String)> {
    let program = std::fs::canonicalize(program).ok()?;
    let meta = std::fs::metadata(&program).ok()?;
    let stamp = format!(
        "{} {} {} {}.{}",
        program.display(),
        meta.len(),
        meta.ino(),
        meta.mtime(),
        meta.mtime_nsec()
    );
    let key = format!("{} {arg0:?} {}", program.display(), args.join(" "));
    let name = fingerprint(key.as_bytes()).replace(':', "-");
    Some((cache_root(flavor).ok()?.join("printed").join(name), stamp))
}

/// The text kept in `kept` for a program with `stamp`: a stamp line, the text's length, an end
/// marker, then the text.
fn read(kept: &str, stamp: &str) -> Option<String> {
    let (first, rest) = kept.split_once('\n')?;
    let (len, rest) = rest.split_once('\n')?;
    let text = rest.strip_prefix(END)?.strip_prefix('\n')?;
    (first == stamp && len.parse::<usize>().ok()? == text.len()).then(|| text.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_whole_answer_for_the_same_program_is_read() {
        let text = "postgres (PostgreSQL) 15.18\n";
        let kept = format!("/bin/x 1 2 3.4\n{}\n{END}\n{text}", text.len());
        assert_eq!(read(&kept, "/bin/x 1 2 3.4").as_deref(), Some(text));
        assert_eq!(read(&kept, "/bin/x 1 2 3.5"), None);
        assert_eq!(read(&kept[..kept.len() - 3], "/bin/x 1 2 3.4"), None);
        assert_eq!(read("", "/bin/x 1 2 3.4"), None);
    }

    #[test]
    fn answers_of_programs_that_are_gone_are_removed() {
        let (dir, programs) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let here = programs.path().join("a program");
        std::fs::write(&here, "").unwrap();
        let kept = |name: &str, program: &Path| {
            let stamp = format!("{} 0 1 2.3", program.display());
            std::fs::write(dir.path().join(name), format!("{stamp}\n0\n{END}\n")).unwrap();
        };
        kept("here", &here);
        kept("gone", &programs.path().join("gone program"));
        std::fs::write(dir.path().join("garbage"), "x").unwrap();
        forget_the_gone(dir.path());
        let mut left: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left, ["here"]);
    }
}
