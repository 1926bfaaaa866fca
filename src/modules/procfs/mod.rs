//! Parsers of the shared /proc files, one file each, so that every input reading a file reads
//! it the same way: `/proc/stat` (cpu, kernel, procstat), `/proc/meminfo` (mem, swap, procstat),
//! `/proc/vmstat` (swap, kernel). The inputs keep their own `ProcFile` and buffer (a file kept
//! open and read at offset 0 each gather); these functions only parse the text.

pub(crate) mod host;
pub(crate) mod meminfo;
pub(crate) mod stat;
pub(crate) mod vmstat;
