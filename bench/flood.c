/*
 * flood: one Ethernet/IPv4/TCP frame (an ACK, no payload) sent again and
 * again at a steady rate, for bench/activity.sh.
 *
 *   flood -i IFACE -s SRC_MAC -d DST_MAC -S SRC_IP -D DST_IP
 *         [-p SPORT=40000] [-P DPORT=80] -r PPS -t SECONDS
 *
 * An AF_PACKET raw socket on IFACE (protocol 0: it receives nothing);
 * sendmmsg batches of about a millisecond's worth of frames, each batch
 * started when the schedule says (clock_nanosleep on CLOCK_MONOTONIC,
 * absolute). When the sender falls behind it sends at once; it stops at
 * the target count or at SECONDS, whichever comes first. -r 0 sends
 * nothing and only waits SECONDS.
 *
 * Prints one line: sent=FRAMES seconds=ELAPSED pps=ACHIEVED target=PPS
 * errors=FAILED_SENDMMSG_CALLS cpu=SECONDS (its own CPU time, exact, which
 * includes the kernel's work on the frames done in its context)
 * Exit: 0 done, 1 a system call failed, 2 usage.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* sendmmsg */
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define FRAME_LEN (14 + 20 + 20)
#define MAX_BATCH 256

static uint32_t sum16(uint32_t sum, const uint8_t *b, size_t n)
{
	for (size_t i = 0; i + 1 < n; i += 2)
		sum += (uint32_t)b[i] << 8 | b[i + 1];
	if (n & 1)
		sum += (uint32_t)b[n - 1] << 8;
	return sum;
}

static void put16(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static uint16_t fold(uint32_t sum)
{
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
}

static void frame_build(uint8_t *f, const uint8_t *smac, const uint8_t *dmac, struct in_addr sip,
			struct in_addr dip, unsigned sport, unsigned dport)
{
	uint8_t *ip = f + 14, *tcp = ip + 20, pseudo[12];

	memset(f, 0, FRAME_LEN);
	memcpy(f, dmac, 6);
	memcpy(f + 6, smac, 6);
	put16(f + 12, ETH_P_IP);
	ip[0] = 0x45;	       /* IPv4, 20-byte header */
	put16(ip + 2, 40);     /* total length */
	put16(ip + 4, 1);      /* id */
	put16(ip + 6, 0x4000); /* DF */
	ip[8] = 64;	       /* TTL */
	ip[9] = IPPROTO_TCP;
	memcpy(ip + 12, &sip, 4);
	memcpy(ip + 16, &dip, 4);
	put16(ip + 10, fold(sum16(0, ip, 20)));
	put16(tcp, sport);
	put16(tcp + 2, dport);
	put16(tcp + 4, 0x1234); /* seq */
	put16(tcp + 8, 0x5678); /* ack */
	tcp[12] = 5 << 4;	/* 20-byte header */
	tcp[13] = 0x10;		/* ACK */
	put16(tcp + 14, 65535); /* window */
	memcpy(pseudo, &sip, 4);
	memcpy(pseudo + 4, &dip, 4);
	pseudo[8] = 0;
	pseudo[9] = IPPROTO_TCP;
	put16(pseudo + 10, 20);
	put16(tcp + 16, fold(sum16(sum16(0, pseudo, 12), tcp, 20)));
}

static int parse_mac(const char *s, uint8_t *mac)
{
	char end;

	return sscanf(s, "%2hhx:%2hhx:%2hhx:%2hhx:%2hhx:%2hhx%c", &mac[0], &mac[1], &mac[2], &mac[3], &mac[4],
		      &mac[5], &end) == 6
		       ? 0
		       : -1;
}

static double now_s(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static struct timespec at(struct timespec t0, double s)
{
	long long ns = t0.tv_nsec + (long long)(s * 1e9);

	t0.tv_sec += (time_t)(ns / 1000000000);
	t0.tv_nsec = (long)(ns % 1000000000);
	return t0;
}

static void usage(void)
{
	fprintf(stderr, "usage: flood -i IFACE -s SRC_MAC -d DST_MAC -S SRC_IP -D DST_IP"
			" [-p SPORT] [-P DPORT] -r PPS -t SECONDS\n");
	exit(2);
}

int main(int argc, char **argv)
{
	const char *ifname = NULL;
	uint8_t smac[6], dmac[6], frame[FRAME_LEN];
	struct in_addr sip = { 0 }, dip = { 0 };
	unsigned sport = 40000, dport = 80, batch;
	double rate = -1, seconds = -1, t_start, elapsed;
	int have = 0, c, fd, one = 1;
	unsigned long long total, sent = 0, errors = 0;
	struct sockaddr_ll to = { .sll_family = AF_PACKET, .sll_protocol = htons(ETH_P_IP), .sll_halen = 6 };
	struct iovec iov = { .iov_base = frame, .iov_len = FRAME_LEN };
	struct mmsghdr msgs[MAX_BATCH];
	struct timespec t0, next, cpu;

	while ((c = getopt(argc, argv, "i:s:d:S:D:p:P:r:t:")) != -1) {
		switch (c) {
		case 'i':
			ifname = optarg;
			have |= 1;
			break;
		case 's':
			if (parse_mac(optarg, smac) < 0)
				usage();
			have |= 2;
			break;
		case 'd':
			if (parse_mac(optarg, dmac) < 0)
				usage();
			have |= 4;
			break;
		case 'S':
			if (inet_pton(AF_INET, optarg, &sip) != 1)
				usage();
			have |= 8;
			break;
		case 'D':
			if (inet_pton(AF_INET, optarg, &dip) != 1)
				usage();
			have |= 16;
			break;
		case 'p':
			sport = (unsigned)strtoul(optarg, NULL, 10);
			break;
		case 'P':
			dport = (unsigned)strtoul(optarg, NULL, 10);
			break;
		case 'r':
			rate = strtod(optarg, NULL);
			break;
		case 't':
			seconds = strtod(optarg, NULL);
			break;
		default:
			usage();
		}
	}
	if (have != 31 || optind != argc || rate < 0 || seconds <= 0 || sport > 65535 || dport > 65535)
		usage();

	frame_build(frame, smac, dmac, sip, dip, sport, dport);
	memcpy(to.sll_addr, dmac, 6);
	if (!(to.sll_ifindex = (int)if_nametoindex(ifname))) {
		perror(ifname);
		return 1;
	}
	if ((fd = socket(AF_PACKET, SOCK_RAW, 0)) < 0) {
		perror("socket");
		return 1;
	}
	/* No qdisc on the way out: fewer cycles per frame (ignored if unsupported). */
	setsockopt(fd, SOL_PACKET, PACKET_QDISC_BYPASS, &one, sizeof(one));
	memset(msgs, 0, sizeof(msgs));
	for (int i = 0; i < MAX_BATCH; i++) {
		msgs[i].msg_hdr.msg_name = &to;
		msgs[i].msg_hdr.msg_namelen = sizeof(to);
		msgs[i].msg_hdr.msg_iov = &iov;
		msgs[i].msg_hdr.msg_iovlen = 1;
	}

	total = (unsigned long long)(rate * seconds + 0.5);
	batch = rate / 1000 < 1 ? 1 : rate / 1000 > MAX_BATCH ? MAX_BATCH : (unsigned)(rate / 1000);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	t_start = now_s();
	if (total == 0) {
		next = at(t0, seconds);
		while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL) == EINTR)
			;
	}
	while (sent < total && now_s() - t_start < seconds) {
		unsigned n = total - sent < batch ? (unsigned)(total - sent) : batch;
		int r = sendmmsg(fd, msgs, n, 0);

		if (r < 0) {
			if (errno != ENOBUFS && errno != EAGAIN && errno != EINTR) {
				perror("sendmmsg");
				return 1;
			}
			errors++;
			r = 0;
		}
		sent += (unsigned)r;
		/* The next batch is due when the frames sent so far are. */
		next = at(t0, (double)(r ? sent : sent + 1) / rate);
		while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL) == EINTR)
			;
	}
	elapsed = now_s() - t_start;
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &cpu);
	printf("sent=%llu seconds=%.3f pps=%.0f target=%.0f errors=%llu cpu=%.3f\n", sent, elapsed,
	       (double)sent / elapsed, rate, errors, (double)cpu.tv_sec + (double)cpu.tv_nsec / 1e9);
	close(fd);
	return 0;
}
