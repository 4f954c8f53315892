//! Reading the peers' log files: tails for failure reports, and searches for the lines tests assert on.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// The last `n` lines of a (text) log file.
pub fn tail(path: &Path, n: usize) -> Result<Vec<String>> {
    let text = read_lossy(path)?;
    let lines: Vec<String> = text.lines().map(str::to_owned).collect();
    let start = lines.len().saturating_sub(n);
    Ok(lines[start..].to_vec())
}

/// A log file's content, with invalid UTF-8 replaced.
pub fn read_lossy(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// The lines of `path` containing every one of `needles`. A missing file has no lines.
pub fn find_lines(path: &Path, needles: &[&str]) -> Vec<String> {
    let Ok(text) = read_lossy(path) else {
        return Vec::new();
    };
    text.lines()
        .filter(|line| needles.iter().all(|n| line.contains(n)))
        .map(str::to_owned)
        .collect()
}

/// Waits until `path` has a line containing every one of `needles` and returns the first such line.
pub fn wait_for_line(path: &Path, needles: &[&str], timeout: Duration) -> Result<String> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(line) = find_lines(path, needles).into_iter().next() {
            return Ok(line);
        }
        if Instant::now() >= deadline {
            bail!(
                "no line containing {needles:?} in {} within {timeout:?}",
                path.display()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Like [`wait_for_line`], for async tests (polls without blocking the runtime).
pub async fn wait_for_line_async(
    path: &Path,
    needles: &[&str],
    timeout: Duration,
) -> Result<String> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(line) = find_lines(path, needles).into_iter().next() {
            return Ok(line);
        }
        if Instant::now() >= deadline {
            bail!(
                "no line containing {needles:?} in {} within {timeout:?}",
                path.display()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Shortens a very long log line for the test output.
pub fn short(line: &str) -> String {
    const MAX: usize = 220;
    if line.chars().count() <= MAX {
        line.to_owned()
    } else {
        let cut: String = line.chars().take(MAX).collect();
        format!("{cut}…")
    }
}
