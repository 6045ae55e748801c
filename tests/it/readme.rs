//! README.md's shell blocks, run verbatim with bash against a fresh daemon on the embedded
//! defaults, with the built `itsmd` first on the PATH as the README tells a newcomer.
//!
//! The only substitution: `127.0.0.1:8080` becomes the test daemon's address (and
//! `ITSMD_SERVER` points the `itsmd` client commands at it). Every command must exit 0
//! (`bash -e -o pipefail`); a `# → TEXT` line is output the block must print, in order, `…`
//! standing for anything. A block preceded by `<!-- not run by the test: REASON -->` is
//! skipped, and listed on stderr with its reason.

use std::path::Path;
use std::process::Command;

use crate::support::{BIN, Setup};

const SKIP: &str = "<!-- not run by the test:";

struct Block {
    /// 1-based line of the opening fence.
    line: usize,
    text: String,
    /// The reason it is not run, when marked.
    skip: Option<String>,
}

/// The ```sh blocks of a Markdown text, with their skip markers.
fn sh_blocks(markdown: &str) -> Vec<Block> {
    let mut blocks = Vec::new();
    let mut lines = markdown.lines().enumerate();
    let mut previous = "";
    while let Some((n, line)) = lines.next() {
        if line.trim() == "```sh" {
            let skip = previous
                .trim()
                .strip_prefix(SKIP)
                .and_then(|r| r.strip_suffix("-->"))
                .map(|r| r.trim().to_string());
            let mut text = String::new();
            for (_, l) in lines.by_ref() {
                if l.trim() == "```" {
                    break;
                }
                text.push_str(l);
                text.push('\n');
            }
            blocks.push(Block {
                line: n + 1,
                text,
                skip,
            });
            previous = "";
        } else {
            if !line.trim().is_empty() {
                previous = line;
            }
        }
    }
    blocks
}

/// Checks that each `# → TEXT` line of `block` is in `output`, in order (`…` matches anything).
fn check_output(block: &Block, output: &str) {
    let mut at = 0;
    for expected in block
        .text
        .lines()
        .filter_map(|l| l.trim().strip_prefix("# → "))
    {
        for piece in expected.split('…').filter(|p| !p.is_empty()) {
            match output[at..].find(piece) {
                Some(i) => at += i + piece.len(),
                None => panic!(
                    "README.md line {}: expected {piece:?} (of {expected:?}) in the output \
                     after byte {at}:\n{output}",
                    block.line
                ),
            }
        }
    }
}

#[test]
fn the_readme_tour_runs_verbatim() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).expect("README.md");
    let blocks = sh_blocks(&readme);
    let d = Setup::new().start();
    let bin_dir = Path::new(BIN).parent().expect("the binary's folder");
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let addr = d.addr.to_string();
    let mut ran = 0;
    for block in &blocks {
        if let Some(reason) = &block.skip {
            assert!(
                !reason.is_empty(),
                "README.md line {}: a skip needs a reason",
                block.line
            );
            eprintln!("README.md line {}: not run: {reason}", block.line);
            continue;
        }
        let script = block.text.replace("127.0.0.1:8080", &addr);
        let out = Command::new("bash")
            .args(["-e", "-x", "-o", "pipefail", "-c", &script])
            .current_dir(root)
            .env("PATH", &path)
            .env("ITSMD_SERVER", d.url(""))
            .env_remove("ITSMD_TOKEN")
            .output()
            .expect("run bash");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "README.md line {}: the block failed ({}):\n{script}\nstdout:\n{stdout}\nstderr:\n{}",
            block.line,
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        check_output(block, &stdout);
        ran += 1;
    }
    // The tour itself: the alert, the reads, the agent's commands, SLA and reports, checks.
    assert!(ran >= 5, "only {ran} README blocks ran");
}
