//! Metric logs of a run: `metrics.jsonl` (one JSON object per logged step, stable keys) and TensorBoard
//! event files (`tensorboard --logdir runs` shows the scalars; `wandb sync --sync-tensorboard` uploads
//! them). The TensorBoard format is written by hand: TFRecord framing with masked CRC-32C around
//! `Event` protocol buffers holding scalar summaries.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Appends scalar metrics to `metrics.jsonl` and a TensorBoard event file in the run directory.
pub struct MetricLog {
    jsonl: File,
    tb: File,
    pub dir: PathBuf,
}

impl MetricLog {
    pub fn open(run: &evdet_run::RunDir) -> std::io::Result<Self> {
        let dir = run.root();
        std::fs::create_dir_all(dir)?;
        let path = run.metrics_log();
        drop_cut_last_line(&path)?;
        let jsonl = OpenOptions::new().create(true).append(true).open(&path)?;
        let now = wall_time();
        let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "localhost".into());
        let name = format!(
            "events.out.tfevents.{}.{host}.{}",
            now as u64,
            std::process::id()
        );
        let mut tb = OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join(name))?;
        // First record: the file version.
        let mut ev = Vec::new();
        proto_double(&mut ev, 1, now);
        proto_bytes(&mut ev, 3, b"brain.Event:2");
        write_record(&mut tb, &ev)?;
        Ok(Self {
            jsonl,
            tb,
            dir: dir.to_path_buf(),
        })
    }

    /// Logs `values` at `step` to both files.
    pub fn log(&mut self, step: u64, values: &BTreeMap<String, f64>) -> std::io::Result<()> {
        let mut obj = serde_json::Map::new();
        obj.insert("step".into(), step.into());
        for (k, v) in values {
            obj.insert(
                k.clone(),
                if v.is_finite() {
                    (*v).into()
                } else {
                    serde_json::Value::Null
                },
            );
        }
        // One write per line: a line is cut only by a kill inside that one system call.
        let line = format!("{}\n", serde_json::Value::Object(obj));
        self.jsonl.write_all(line.as_bytes())?;
        self.jsonl.flush()?;
        let mut summary = Vec::new();
        for (k, v) in values {
            let mut value = Vec::new();
            proto_bytes(&mut value, 1, k.as_bytes());
            proto_float(&mut value, 2, *v as f32);
            proto_bytes(&mut summary, 1, &value);
        }
        let mut ev = Vec::new();
        proto_double(&mut ev, 1, wall_time());
        proto_varint_field(&mut ev, 2, step);
        proto_bytes(&mut ev, 5, &summary);
        write_record(&mut self.tb, &ev)?;
        self.tb.flush()
    }
}

/// A run killed in the middle of writing a line leaves it without its newline; the resumed run would
/// glue its next line to it. The cut line goes (the resumed run logs that step again).
fn drop_cut_last_line(path: &Path) -> std::io::Result<()> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    if bytes.is_empty() || bytes.ends_with(b"\n") {
        return Ok(());
    }
    let keep = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    OpenOptions::new()
        .write(true)
        .open(path)?
        .set_len(keep as u64)
}

/// Reads `metrics.jsonl` back (for reports and resume checks).
pub fn read_jsonl(path: &Path) -> std::io::Result<Vec<serde_json::Value>> {
    let text = std::fs::read_to_string(path)?;
    Ok(text
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect())
}

fn wall_time() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn proto_varint_field(out: &mut Vec<u8>, field: u32, v: u64) {
    varint(out, (field as u64) << 3);
    varint(out, v);
}

fn proto_double(out: &mut Vec<u8>, field: u32, v: f64) {
    varint(out, ((field as u64) << 3) | 1);
    out.extend_from_slice(&v.to_le_bytes());
}

fn proto_float(out: &mut Vec<u8>, field: u32, v: f32) {
    varint(out, ((field as u64) << 3) | 5);
    out.extend_from_slice(&v.to_le_bytes());
}

fn proto_bytes(out: &mut Vec<u8>, field: u32, b: &[u8]) {
    varint(out, ((field as u64) << 3) | 2);
    varint(out, b.len() as u64);
    out.extend_from_slice(b);
}

/// CRC-32C (Castagnoli), bitwise: records are small.
fn crc32c(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= b as u32;
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0x82F6_3B78
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

fn masked_crc(data: &[u8]) -> u32 {
    let c = crc32c(data);
    (c.rotate_right(15)).wrapping_add(0xA282_EAD8)
}

fn write_record(f: &mut File, data: &[u8]) -> std::io::Result<()> {
    let len = (data.len() as u64).to_le_bytes();
    f.write_all(&len)?;
    f.write_all(&masked_crc(&len).to_le_bytes())?;
    f.write_all(data)?;
    f.write_all(&masked_crc(data).to_le_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32c_matches_the_standard_check_value() {
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
    }

    #[test]
    fn a_line_cut_by_a_kill_is_dropped_when_the_log_reopens() {
        let d = tempfile::tempdir().unwrap();
        let p = evdet_run::RunDir::at(d.path()).metrics_log();
        std::fs::write(
            &p,
            "{\"step\":1,\"train/loss\":2.0}\n{\"step\":2,\"train/lo",
        )
        .unwrap();
        let mut log = MetricLog::open(&evdet_run::RunDir::at(d.path())).unwrap();
        let mut m = BTreeMap::new();
        m.insert("train/loss".to_string(), 1.5);
        log.log(2, &m).unwrap();
        let rows = read_jsonl(&p).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(
            (rows[0]["step"].clone(), rows[1]["step"].clone()),
            (1.into(), 2.into())
        );
        assert_eq!(rows[1]["train/loss"], 1.5);
    }

    #[test]
    fn writes_jsonl_and_a_framed_event_file() {
        let d = tempfile::tempdir().unwrap();
        let mut log = MetricLog::open(&evdet_run::RunDir::at(d.path())).unwrap();
        let mut m = BTreeMap::new();
        m.insert("train/loss".to_string(), 1.5);
        log.log(7, &m).unwrap();
        let rows = read_jsonl(&evdet_run::RunDir::at(d.path()).metrics_log()).unwrap();
        assert_eq!(rows[0]["step"], 7);
        assert_eq!(rows[0]["train/loss"], 1.5);
        let ev = std::fs::read_dir(d.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.to_string_lossy().contains("tfevents"))
            .unwrap();
        let bytes = std::fs::read(ev).unwrap();
        // two records, each framed as len(8) crc(4) data crc(4) with valid CRCs
        let mut pos = 0;
        let mut n = 0;
        while pos < bytes.len() {
            let len = u64::from_le_bytes(bytes[pos..pos + 8].try_into().unwrap()) as usize;
            assert_eq!(
                u32::from_le_bytes(bytes[pos + 8..pos + 12].try_into().unwrap()),
                masked_crc(&bytes[pos..pos + 8])
            );
            let data = &bytes[pos + 12..pos + 12 + len];
            assert_eq!(
                u32::from_le_bytes(bytes[pos + 12 + len..pos + 16 + len].try_into().unwrap()),
                masked_crc(data)
            );
            pos += 16 + len;
            n += 1;
        }
        assert_eq!(n, 2);
        assert!(bytes.windows(10).any(|w| w == b"train/loss"));
    }
}
