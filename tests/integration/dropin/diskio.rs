//! telegraf's diskio (`plugins/inputs/diskio`): options and schema.

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use super::{Kind::*, Series, Setup, Table};

pub(crate) const TABLE: Table = Table {
    input: "diskio",
    base: "",
    options: &[
        r#"devices = ["sda", "sdb", "vd*", "/dev/disk/by-id/nvme-eui.00123deadc0de123"]"#,
        r#"devices = ["*"]"#,
        r#"skip_serial_number = true"#,
        r#"device_tags = ["ID_FS_TYPE", "ID_FS_USAGE"]"#,
        r#"name_templates = ["$ID_FS_LABEL","$DM_VG_NAME/$DM_LV_NAME"]"#,
    ],
    refused: &[],
    schema: &[Series {
        measurement: "diskio",
        tags: &["name", "serial", "wwid", "ID_FS_TYPE", "ID_FS_USAGE"],
        fields: &[
            ("reads", Int),
            ("writes", Int),
            ("read_bytes", Int),
            ("write_bytes", Int),
            ("read_time", Int),
            ("write_time", Int),
            ("io_time", Int),
            ("weighted_io_time", Int),
            ("iops_in_progress", Int),
            ("merged_reads", Int),
            ("merged_writes", Int),
            ("io_await", Float),
            ("io_svctm", Float),
            ("io_util", Float),
        ],
        extra: &[],
        unseen: &[],
    }],
    setup,
};

/// Stops the writer thread when the run ends.
struct Writer(Arc<AtomicBool>);

impl Drop for Writer {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Three seconds at a 1 s interval (`io_await`, `io_svctm` and `io_util` come from the second
/// gather on, the first two only for a device that completed I/O in between): a thread writes
/// and syncs a file on the build directory's disk meanwhile.
fn setup() -> Setup {
    let stop = Arc::new(AtomicBool::new(false));
    let s2 = stop.clone();
    std::thread::spawn(move || {
        let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
        let mut f = std::fs::File::create(dir.path().join("io")).unwrap();
        // Bounded: at most 20 s of writes even if the guard is never dropped.
        for _ in 0..400 {
            if s2.load(Ordering::Relaxed) {
                break;
            }
            let _ = f.write_all(&[7u8; 64 * 1024]);
            let _ = f.sync_all();
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    });
    let mut s = Setup::with(
        "[agent]\ninterval = \"1s\"\n[[inputs.diskio]]\nskip_serial_number = false\n\
         device_tags = [\"ID_FS_TYPE\", \"ID_FS_USAGE\"]\n",
        Writer(stop),
    );
    s.seconds = 3;
    s
}
