/*
 * The floor under bench/host.sh's procstat figures: the kernel work of one procstat gather by
 * pattern and nothing else. Each round reads /proc/meminfo (MemTotal, for memory_usage), walks
 * /proc, reads every process's cmdline to match the pattern (a prefix here: the cheapest match
 * there is) or, for a process without one (a kernel thread), its comm, as pgrep -f does (the
 * default pid_finder: telegraf runs `pgrep -f`), and for each match reads the files
 * telegraf's default properties need: stat (cpu times, faults, threads), status (memory,
 * context switches), io (bytes read and written), the fd directory (num_fds) and, with MMAP=1,
 * smaps_rollup (the memory_* fields of the "mmap" property). It writes one short line per
 * process to stdout. No parsing beyond the match, no encoding, no runtime: what any
 * implementation of procstat pays at least, since a process's files must be opened anew in each
 * gather (pids come and go).
 *
 * Rounds start every INTERVAL_MS (absolute deadlines), as the agent's gathers do: back-to-back
 * rounds would find every cache hot and measure less than any periodic collector can pay.
 *
 * Usage: procstat-floor ROUNDS PREFIX MMAP INTERVAL_MS ; prints "cpu_ms_per_gather=X
 * processes=N" on stderr.
 */
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

static char buf[1 << 16];

static long slurp(const char *path) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    long total = 0;
    ssize_t n;
    while ((n = read(fd, buf, sizeof buf)) > 0) total += n;
    close(fd);
    return total;
}

static int count_fds(const char *path) {
    DIR *d = opendir(path);
    if (!d) return -1;
    int n = 0;
    while (readdir(d)) n++;
    closedir(d);
    return n - 2;
}

int main(int argc, char **argv) {
    if (argc != 5) {
        fprintf(stderr, "usage: %s ROUNDS PREFIX MMAP INTERVAL_MS\n", argv[0]);
        return 2;
    }
    long rounds = atol(argv[1]);
    const char *prefix = argv[2];
    size_t plen = strlen(prefix);
    int mmap = atoi(argv[3]);
    long interval_ns = atol(argv[4]) * 1000000L;
    char path[300];
    long matched = 0;
    struct timespec next;
    clock_gettime(CLOCK_MONOTONIC, &next);
    for (long r = 0; r < rounds; r++) {
        next.tv_nsec += interval_ns;
        while (next.tv_nsec >= 1000000000L) {
            next.tv_nsec -= 1000000000L;
            next.tv_sec++;
        }
        clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL);
        slurp("/proc/meminfo");
        DIR *proc = opendir("/proc");
        if (!proc) return 1;
        struct dirent *e;
        matched = 0;
        while ((e = readdir(proc))) {
            if (e->d_name[0] < '1' || e->d_name[0] > '9') continue;
            snprintf(path, sizeof path, "/proc/%s/cmdline", e->d_name);
            int fd = open(path, O_RDONLY | O_CLOEXEC);
            if (fd < 0) continue;
            ssize_t n = read(fd, buf, sizeof buf);
            close(fd);
            if (n == 0) {
                snprintf(path, sizeof path, "/proc/%s/comm", e->d_name);
                fd = open(path, O_RDONLY | O_CLOEXEC);
                if (fd < 0) continue;
                n = read(fd, buf, sizeof buf);
                close(fd);
            }
            if (n < (ssize_t)plen || memcmp(buf, prefix, plen) != 0) continue;
            static const char *files[] = {"stat", "status", "io"};
            long bytes = 0;
            for (size_t i = 0; i < 3; i++) {
                snprintf(path, sizeof path, "/proc/%s/%s", e->d_name, files[i]);
                bytes += slurp(path);
            }
            snprintf(path, sizeof path, "/proc/%s/fd", e->d_name);
            int fds = count_fds(path);
            if (mmap) {
                snprintf(path, sizeof path, "/proc/%s/smaps_rollup", e->d_name);
                bytes += slurp(path);
            }
            printf("procstat,pid=%s bytes=%ldi,num_fds=%di\n", e->d_name, bytes, fds);
            matched++;
        }
        closedir(proc);
        fflush(stdout);
    }
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double ms = ru.ru_utime.tv_sec * 1e3 + ru.ru_utime.tv_usec / 1e3 + ru.ru_stime.tv_sec * 1e3 +
                ru.ru_stime.tv_usec / 1e3;
    fprintf(stderr, "cpu_ms_per_gather=%.3f processes=%ld\n", ms / rounds, matched);
    return 0;
}
