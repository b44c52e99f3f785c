//! Getting dataset files: HTTPS downloads (resumable) or copies from a local mirror, each
//! verified against the manifest's checksum before it takes its final name.
//!
//! A file is written as `<name>.part` and renamed only once its checksum matches, so a file
//! under its final name is always whole and verified. An interrupted download leaves the
//! `.part` file; the next fetch asks the server for the rest (`Range`) and hashes the whole
//! file again at the end. A mismatch deletes the `.part` file and names the file and both
//! hashes.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use indicatif::{ProgressBar, ProgressStyle};
use md5::Md5;
use sha2::{Digest, Sha256};

use crate::{Checksum, DataDir, DataError, FileEntry, Format, Manifest, Unpack};

/// Where files come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// The manifest's URLs, tried in order.
    Download,
    /// A local directory laid out as `shared/datasets`: `<dir>/<mirror_dir>/<file name>`.
    Mirror(PathBuf),
}

/// What a fetch did, file by file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FetchReport {
    /// Files that were already present and verified.
    pub present: Vec<String>,
    /// Files downloaded or copied, then verified.
    pub fetched: Vec<String>,
}

/// Fetches every file of `manifest` into `dir` from `source`, verifies it and unpacks archives.
/// For network weights ([`Format::Weights`]) one file of each role is enough: the first that
/// is present or that `source` has (a mirror may hold one form, a download the other).
pub fn fetch(
    manifest: &Manifest,
    dir: &DataDir,
    source: &Source,
) -> Result<FetchReport, DataError> {
    let dest_dir = dir.dataset(&manifest.name);
    std::fs::create_dir_all(&dest_dir).map_err(|e| DataError::io(&dest_dir, e))?;
    let mut report = FetchReport::default();
    if manifest.format == Format::Weights {
        for role in manifest.roles() {
            let mut last = None;
            for file in manifest.files.iter().filter(|f| f.role == role) {
                match fetch_file(manifest, file, &dest_dir, source, &mut report) {
                    Ok(()) => {
                        last = None;
                        break;
                    }
                    Err(e) => last = Some(e),
                }
            }
            if let Some(e) = last {
                return Err(e);
            }
        }
        return Ok(report);
    }
    for file in &manifest.files {
        fetch_file(manifest, file, &dest_dir, source, &mut report)?;
    }
    Ok(report)
}

/// One file into `dest_dir`: kept when present and verified, else fetched, verified and
/// renamed into place; archives are unpacked.
fn fetch_file(
    manifest: &Manifest,
    file: &FileEntry,
    dest_dir: &Path,
    source: &Source,
    report: &mut FetchReport,
) -> Result<(), DataError> {
    let dest = dest_dir.join(&file.name);
    if dest.is_file() && hash_file(&dest, &file.checksum)? == file.checksum.hex() {
        report.present.push(file.name.clone());
    } else {
        // A download keeps one `.part` name so that a later fetch can resume it; a mirror
        // copy is cheap to redo, so it gets a name of its own per process and thread and
        // concurrent fetches of the same dataset (parallel tests) cannot tear each other's.
        let part = match source {
            Source::Download => dest_dir.join(format!("{}.part", file.name)),
            Source::Mirror(_) => dest_dir.join(format!(
                "{}.part-{}-{:?}",
                file.name,
                std::process::id(),
                std::thread::current().id()
            )),
        };
        match source {
            Source::Download => download(manifest, file, &part)?,
            Source::Mirror(mirror) => {
                let from = mirror.join(&manifest.mirror_dir).join(&file.name);
                copy_with_progress(&from, &part, file)?;
            }
        }
        verify(&part, file)?;
        std::fs::rename(&part, &dest).map_err(|e| DataError::io(&dest, e))?;
        report.fetched.push(file.name.clone());
    }
    if let Some(kind) = file.unpack {
        unpack(&dest, kind, dest_dir)?;
    }
    Ok(())
}

fn bar(len: Option<u64>, name: &str) -> ProgressBar {
    let bar = match len {
        Some(n) => ProgressBar::new(n),
        None => ProgressBar::no_length(),
    };
    bar.set_style(
        ProgressStyle::with_template(
            "{msg:32} {bar:30} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.set_message(name.to_string());
    bar
}

/// Appends `reader` to `out`, advancing `bar`.
fn pump(
    mut reader: impl Read,
    out: &mut File,
    bar: &ProgressBar,
    path: &Path,
) -> Result<(), DataError> {
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = reader.read(&mut buf).map_err(|e| DataError::io(path, e))?;
        if n == 0 {
            return Ok(());
        }
        out.write_all(&buf[..n])
            .map_err(|e| DataError::io(path, e))?;
        bar.inc(n as u64);
    }
}

fn copy_with_progress(from: &Path, part: &Path, file: &FileEntry) -> Result<(), DataError> {
    let input = File::open(from).map_err(|e| DataError::io(from, e))?;
    let mut out = File::create(part).map_err(|e| DataError::io(part, e))?;
    let bar = bar(file.size, &file.name);
    pump(input, &mut out, &bar, part)?;
    out.sync_all().map_err(|e| DataError::io(part, e))?;
    bar.finish_and_clear();
    eprintln!("copied {} from {}", file.name, from.display());
    Ok(())
}

fn download(manifest: &Manifest, file: &FileEntry, part: &Path) -> Result<(), DataError> {
    if file.urls.is_empty() {
        return Err(DataError::Download {
            file: file.name.clone(),
            message: format!(
                "dataset {} has no download URL; copy it from a mirror (`--mirror DIR`)",
                manifest.name
            ),
        });
    }
    let mut failures = Vec::new();
    for url in &file.urls {
        match download_one(url, file, part) {
            Ok(()) => {
                eprintln!("downloaded {} from {url}", file.name);
                return Ok(());
            }
            Err(message) => failures.push(format!("{url}: {message}")),
        }
    }
    Err(DataError::Download {
        file: file.name.clone(),
        message: failures.join("; "),
    })
}

/// One attempt from one URL, resuming a `.part` file left by an earlier attempt when the server
/// honours `Range`.
fn download_one(url: &str, file: &FileEntry, part: &Path) -> Result<(), String> {
    let have = std::fs::metadata(part).map(|m| m.len()).unwrap_or(0);
    if file.size.is_some_and(|size| have >= size) {
        return Ok(()); // a whole earlier download, still to be verified
    }
    let mut request = ureq::get(url);
    if have > 0 {
        request = request.header("Range", format!("bytes={have}-"));
    }
    let response = request.call().map_err(|e| e.to_string())?;
    let resumed = response.status().as_u16() == 206;
    let mut out = OpenOptions::new()
        .create(true)
        .write(true)
        .append(resumed)
        .truncate(!resumed)
        .open(part)
        .map_err(|e| e.to_string())?;
    let bar = bar(file.size, &file.name);
    if resumed {
        bar.set_position(have);
    }
    let body = response.into_body().into_reader();
    pump(body, &mut out, &bar, part).map_err(|e| e.to_string())?;
    out.sync_all().map_err(|e| e.to_string())?;
    bar.finish_and_clear();
    Ok(())
}

/// Hashes a file with the manifest's algorithm; lower-case hex.
pub(crate) fn hash_file(path: &Path, checksum: &Checksum) -> Result<String, DataError> {
    fn run<D: Digest>(path: &Path) -> Result<String, DataError> {
        let mut f = File::open(path).map_err(|e| DataError::io(path, e))?;
        let mut hasher = D::new();
        let mut buf = vec![0u8; 1 << 16];
        loop {
            let n = f.read(&mut buf).map_err(|e| DataError::io(path, e))?;
            if n == 0 {
                return Ok(hex::encode(hasher.finalize()));
            }
            hasher.update(&buf[..n]);
        }
    }
    match checksum {
        Checksum::Sha256(_) => run::<Sha256>(path),
        Checksum::Md5(_) => run::<Md5>(path),
    }
}

/// Checks a fetched file; on a mismatch deletes it and reports both hashes.
fn verify(part: &Path, file: &FileEntry) -> Result<(), DataError> {
    let found = hash_file(part, &file.checksum)?;
    if found == file.checksum.hex() {
        return Ok(());
    }
    let _ = std::fs::remove_file(part);
    Err(DataError::Checksum {
        path: part.with_file_name(&file.name),
        algorithm: file.checksum.algorithm(),
        expected: file.checksum.hex().to_string(),
        found,
    })
}

/// Unpacks a verified archive into the dataset directory, unless a previous fetch did.
fn unpack(archive: &Path, kind: Unpack, into: &Path) -> Result<(), DataError> {
    let marker = into.join(format!(
        ".{}.unpacked",
        archive
            .file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default()
    ));
    if marker.is_file() {
        return Ok(());
    }
    let input = File::open(archive).map_err(|e| DataError::io(archive, e))?;
    match kind {
        Unpack::TarGz => tar::Archive::new(flate2::read::GzDecoder::new(input))
            .unpack(into)
            .map_err(|e| DataError::corrupt(archive, format!("unpacking: {e}")))?,
        Unpack::Zip => zip::ZipArchive::new(input)
            .and_then(|mut z| z.extract(into))
            .map_err(|e| DataError::corrupt(archive, format!("unpacking: {e}")))?,
    }
    std::fs::write(&marker, b"").map_err(|e| DataError::io(&marker, e))?;
    eprintln!("unpacked {}", archive.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn manifest_for(mirror: &Path, content: &[u8]) -> Manifest {
        std::fs::create_dir_all(mirror.join("toy")).unwrap();
        std::fs::write(mirror.join("toy/a.bin"), content).unwrap();
        let sha = hex::encode(Sha256::digest(b"the right bytes"));
        Manifest::parse(
            "toy",
            &format!(
                r#"name = "toy"
description = "toy"
format = "image-folder"
mirror_dir = "toy"
[[files]]
role = "archive"
name = "a.bin"
sha256 = "{sha}"
"#
            ),
        )
        .unwrap()
    }

    #[test]
    fn mirror_copy_is_verified_and_kept() {
        let mirror = tempfile::tempdir().unwrap();
        let data = tempfile::tempdir().unwrap();
        let m = manifest_for(mirror.path(), b"the right bytes");
        let dir = DataDir::new(data.path());
        let r = fetch(&m, &dir, &Source::Mirror(mirror.path().into())).unwrap();
        assert_eq!(r.fetched, vec!["a.bin".to_string()]);
        assert_eq!(
            std::fs::read(data.path().join("toy/a.bin")).unwrap(),
            b"the right bytes"
        );
        let again = fetch(&m, &dir, &Source::Mirror(mirror.path().into())).unwrap();
        assert_eq!(
            again.present,
            vec!["a.bin".to_string()],
            "a verified file is not fetched twice"
        );
    }

    #[test]
    fn wrong_checksum_deletes_the_file_and_names_both_hashes() {
        let mirror = tempfile::tempdir().unwrap();
        let data = tempfile::tempdir().unwrap();
        let m = manifest_for(mirror.path(), b"the wrong bytes");
        let dir = DataDir::new(data.path());
        let e = fetch(&m, &dir, &Source::Mirror(mirror.path().into())).unwrap_err();
        let msg = e.to_string();
        assert!(matches!(e, DataError::Checksum { .. }), "{msg}");
        assert!(
            msg.contains("a.bin") && msg.contains(m.files[0].checksum.hex()),
            "{msg}"
        );
        assert!(
            msg.contains(&hex::encode(Sha256::digest(b"the wrong bytes"))),
            "{msg}"
        );
        let left: Vec<_> = std::fs::read_dir(data.path().join("toy"))
            .unwrap()
            .collect();
        assert!(
            left.is_empty(),
            "nothing unverified is left behind: {left:?}"
        );
    }

    #[test]
    fn a_corrupted_file_in_place_is_fetched_again() {
        let mirror = tempfile::tempdir().unwrap();
        let data = tempfile::tempdir().unwrap();
        let m = manifest_for(mirror.path(), b"the right bytes");
        let dir = DataDir::new(data.path());
        std::fs::create_dir_all(data.path().join("toy")).unwrap();
        std::fs::write(data.path().join("toy/a.bin"), b"bit rot").unwrap();
        let r = fetch(&m, &dir, &Source::Mirror(mirror.path().into())).unwrap();
        assert_eq!(r.fetched.len(), 1);
        assert_eq!(
            std::fs::read(data.path().join("toy/a.bin")).unwrap(),
            b"the right bytes"
        );
    }

    /// A one-file HTTP server on loopback: the first request is cut off half-way through the
    /// body; later ones honour `Range: bytes=N-`. Returns the URL and the ranges asked for.
    fn flaky_server(body: Vec<u8>) -> (String, std::sync::mpsc::Receiver<Option<u64>>) {
        use std::io::{BufRead, BufReader};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/a.bin", listener.local_addr().unwrap());
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for (i, stream) in listener.incoming().take(4).enumerate() {
                let mut stream = stream.unwrap();
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut from = None;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap() == 0 || line == "\r\n" {
                        break;
                    }
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("range: bytes=") {
                        from = v.trim().trim_end_matches('-').parse::<u64>().ok();
                    }
                }
                tx.send(from).unwrap();
                let start = from.unwrap_or(0) as usize;
                let head = match from {
                    Some(_) => format!(
                        "HTTP/1.1 206 Partial Content\r\nContent-Length: {}\r\nContent-Range: bytes {start}-{}/{}\r\nConnection: close\r\n\r\n",
                        body.len() - start,
                        body.len() - 1,
                        body.len()
                    ),
                    None => format!(
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                        body.len()
                    ),
                };
                stream.write_all(head.as_bytes()).unwrap();
                let end = if i == 0 { body.len() / 2 } else { body.len() };
                stream.write_all(&body[start..end]).unwrap();
            }
        });
        (url, rx)
    }

    #[test]
    fn an_interrupted_download_resumes_with_a_range_request() {
        let body: Vec<u8> = (0..100_000u32).flat_map(|v| v.to_le_bytes()).collect();
        let (url, ranges) = flaky_server(body.clone());
        let sha = hex::encode(Sha256::digest(&body));
        let m = Manifest::parse(
            "toy",
            &format!(
                "name = \"toy\"\ndescription = \"toy\"\nformat = \"image-folder\"\nmirror_dir = \"toy\"\n[[files]]\nrole = \"archive\"\nname = \"a.bin\"\nurls = [\"{url}\"]\nsha256 = \"{sha}\"\nsize = {}\n",
                body.len()
            ),
        )
        .unwrap();
        let data = tempfile::tempdir().unwrap();
        let dir = DataDir::new(data.path());
        let e = fetch(&m, &dir, &Source::Download).unwrap_err();
        assert!(
            matches!(e, DataError::Download { .. }) && e.to_string().contains(&url),
            "{e}"
        );
        let part = data.path().join("toy/a.bin.part");
        let kept = std::fs::metadata(&part).unwrap().len();
        assert!(
            kept > 0 && kept < body.len() as u64,
            "the partial download is kept: {kept}"
        );
        assert!(
            !data.path().join("toy/a.bin").exists(),
            "no unverified file under the final name"
        );

        let r = fetch(&m, &dir, &Source::Download).unwrap();
        assert_eq!(r.fetched, vec!["a.bin".to_string()]);
        assert_eq!(ranges.recv().unwrap(), None);
        assert_eq!(
            ranges.recv().unwrap(),
            Some(kept),
            "the second request asks for the rest"
        );
        assert_eq!(std::fs::read(data.path().join("toy/a.bin")).unwrap(), body);
        assert!(!part.exists());
    }

    #[test]
    fn missing_mirror_file_and_url_less_download_are_clear_errors() {
        let mirror = tempfile::tempdir().unwrap();
        let data = tempfile::tempdir().unwrap();
        let m = manifest_for(mirror.path(), b"x");
        std::fs::remove_file(mirror.path().join("toy/a.bin")).unwrap();
        let dir = DataDir::new(data.path());
        let e = fetch(&m, &dir, &Source::Mirror(mirror.path().into())).unwrap_err();
        assert!(
            matches!(e, DataError::Missing { .. }) && e.to_string().contains("toy/a.bin"),
            "{e}"
        );
        let e = fetch(&m, &dir, &Source::Download).unwrap_err().to_string();
        assert!(
            e.contains("no download URL") && e.contains("--mirror"),
            "{e}"
        );
    }
}
