//! What was measured where, for the head of a report: the commit the bench
//! was built from (by `build.rs`; "unknown" outside a git checkout), the
//! kernel (`uname`), the CPU model (`/proc/cpuinfo`) and how many CPUs
//! are online, and the mode (smoke, quick or full). Whether a case's
//! latency is a round trip or one way is said per case (in each record and
//! summary line), since it differs between cases.

use ringflow_core::json::string as json_str;

use crate::harness::Mode;

/// The run's circumstances.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunMeta {
    /// The commit built from (`+changes` if the tree differed), or "unknown".
    pub commit: String,
    /// `uname -sr`, e.g. "Linux 6.8.0-45-generic".
    pub kernel: String,
    /// The CPU's model name, or "unknown".
    pub cpu: String,
    /// CPUs online.
    pub cpus: usize,
    /// smoke, quick or full.
    pub mode: &'static str,
}

impl RunMeta {
    /// This machine and build, measured in `mode`.
    pub fn detect(mode: Mode) -> RunMeta {
        RunMeta {
            commit: env!("BENCH_BUILD_COMMIT").to_owned(),
            kernel: kernel(),
            cpu: cpu_model(&std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default()),
            cpus: std::thread::available_parallelism().map_or(0, |n| n.get()),
            mode: mode.as_str(),
        }
    }

    /// The report's first line.
    pub fn line(&self) -> String {
        format!(
            "# ringflow bench, {} mode: commit {}; kernel {}; CPU {} ({} online); latency is per case \
             (round trip or one way, in each summary line)",
            self.mode, self.commit, self.kernel, self.cpu, self.cpus
        )
    }

    /// The report's first JSON line: `{"meta":{...}}`.
    pub fn to_json(&self) -> String {
        format!(
            "{{\"meta\":{{\"commit\":{},\"kernel\":{},\"cpu\":{},\"cpus\":{},\"mode\":{}}}}}",
            json_str(&self.commit),
            json_str(&self.kernel),
            json_str(&self.cpu),
            self.cpus,
            json_str(self.mode)
        )
    }
}

/// `uname`'s system name and release, or "unknown".
fn kernel() -> String {
    // SAFETY: utsname is plain bytes; all zeroes is a valid value.
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: `u` is a live utsname the call fills in.
    if unsafe { libc::uname(&mut u) } != 0 {
        return "unknown".to_owned();
    }
    let field = |f: &[libc::c_char]| {
        let bytes: Vec<u8> = f.iter().take_while(|&&c| c != 0).map(|&c| c as u8).collect();
        String::from_utf8_lossy(&bytes).into_owned()
    };
    format!("{} {}", field(&u.sysname), field(&u.release))
}

/// The first `model name` of a `/proc/cpuinfo` text (other architectures
/// name it `Model` or `cpu model`), or "unknown".
fn cpu_model(cpuinfo: &str) -> String {
    cpuinfo
        .lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| matches!(k.trim(), "model name" | "Model" | "cpu model"))
        .map(|(_, v)| v.trim().to_owned())
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "unknown".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cpu_model_is_read_from_cpuinfo() {
        let text = "processor\t: 0\nvendor_id\t: GenuineIntel\nmodel\t\t: 85\nmodel name\t: Intel(R) Xeon(R) \
                    Platinum 8259CL CPU @ 2.50GHz\n\nprocessor\t: 1\nmodel name\t: other\n";
        assert_eq!(cpu_model(text), "Intel(R) Xeon(R) Platinum 8259CL CPU @ 2.50GHz");
        assert_eq!(cpu_model("processor : 0\nModel : Raspberry Pi 4\n"), "Raspberry Pi 4");
        assert_eq!(cpu_model(""), "unknown");
    }

    #[test]
    fn this_machine_is_described_in_words_and_json() {
        let meta = RunMeta::detect(Mode::Quick);
        assert!(meta.kernel.starts_with("Linux "), "{}", meta.kernel);
        assert!(!meta.commit.is_empty());
        assert!(meta.cpus > 0);
        let line = meta.line();
        assert!(line.starts_with("# ringflow bench, quick mode: commit "), "{line}");
        assert!(line.contains(&meta.kernel) && line.contains(&meta.cpu), "{line}");
        let json = meta.to_json();
        assert!(json.starts_with("{\"meta\":{\"commit\":"), "{json}");
        assert!(json.contains("\"mode\":\"quick\"") && json.ends_with("}}"), "{json}");
    }
}
