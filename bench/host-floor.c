/*
 * The floor under bench/host.sh: the kernel work of one round of our seven host inputs and
 * nothing else. Every 100 ms (absolute deadlines, one wake-up per round) it re-reads the files
 * the inputs read (kept open, pread at 0), calls statvfs on the given mount points, makes the
 * one sock_diag dump netstat makes (the legacy request that walks the TCP table once for both
 * families, TIME_WAIT left to sockstat), and writes one line to stdout. No parsing, no encoding,
 * no runtime: what any implementation of these inputs pays at least.
 *
 * Usage: host-floor ROUNDS BYTES_PER_ROUND MOUNT... ; prints "cpu_ms_per_round=X" on stderr.
 */
#include <fcntl.h>
#include <linux/netlink.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

static const char *files[] = {
    "/proc/stat",        "/proc/meminfo",  "/proc/loadavg",   "/proc/uptime",
    "/sys/devices/system/cpu/online", "/proc/diskstats", "/proc/net/dev",
    "/proc/net/sockstat", "/proc/net/sockstat6",
};
#define NFILES (sizeof files / sizeof files[0])

static char buf[1 << 16];

static void dump_tcp(int nl, uint32_t seq) {
    struct {
        struct nlmsghdr h;
        unsigned char family, src_len, dst_len, ext;
        unsigned char sockid[48];
        uint32_t states, dbs;
    } __attribute__((packed)) req;
    memset(&req, 0, sizeof req);
    req.h.nlmsg_len = sizeof req;
    req.h.nlmsg_type = 18; /* TCPDIAG_GETSOCK */
    req.h.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
    req.h.nlmsg_seq = seq;
    req.family = 2;
    req.states = 0xfff & ~(1u << 6);
    struct sockaddr_nl to = {.nl_family = AF_NETLINK};
    if (sendto(nl, &req, sizeof req, 0, (struct sockaddr *)&to, sizeof to) < 0) exit(1);
    for (;;) {
        ssize_t n = recv(nl, buf, sizeof buf, 0);
        if (n <= 0) exit(1);
        for (struct nlmsghdr *h = (struct nlmsghdr *)buf; NLMSG_OK(h, n); h = NLMSG_NEXT(h, n))
            if (h->nlmsg_type == NLMSG_DONE || h->nlmsg_type == NLMSG_ERROR) return;
    }
}

int main(int argc, char **argv) {
    if (argc < 3) return 2;
    int rounds = atoi(argv[1]);
    size_t out_len = (size_t)atoi(argv[2]);
    int fds[NFILES];
    for (size_t i = 0; i < NFILES; i++) fds[i] = open(files[i], O_RDONLY | O_CLOEXEC);
    int nl = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, 4 /* NETLINK_SOCK_DIAG */);
    char *line = malloc(out_len + 1);
    memset(line, 'x', out_len);
    line[out_len - 1] = '\n';
    struct timespec next;
    clock_gettime(CLOCK_MONOTONIC, &next);
    struct timespec c0;
    for (int r = 0; r <= rounds; r++) {
        if (r == 1) clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c0); /* round 0 warms up */
        next.tv_nsec += 100000000;
        if (next.tv_nsec >= 1000000000) { next.tv_sec++; next.tv_nsec -= 1000000000; }
        clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL);
        for (size_t i = 0; i < NFILES; i++)
            if (fds[i] >= 0) while (pread(fds[i], buf, sizeof buf, 0) == (ssize_t)sizeof buf) {}
        for (int m = 3; m < argc; m++) { struct statvfs s; statvfs(argv[m], &s); }
        dump_tcp(nl, (uint32_t)r + 1);
        if (write(1, line, out_len) < 0) return 1;
    }
    struct timespec c1;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c1);
    double ms = ((c1.tv_sec - c0.tv_sec) * 1e9 + (c1.tv_nsec - c0.tv_nsec)) / 1e6;
    fprintf(stderr, "cpu_ms_per_round=%.4f\n", ms / rounds);
    return 0;
}
