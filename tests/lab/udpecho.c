/*
 * udpecho PORT: the lab guest's UDP echo (busybox's nc has no -u): every
 * datagram to PORT goes back to its sender unchanged. Built static by
 * mkguest.sh, libc only.
 */
#include <netinet/in.h>
#include <stdlib.h>
#include <sys/socket.h>

int main(int argc, char **argv)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	int fd = socket(AF_INET, SOCK_DGRAM, 0);
	char buf[65536];

	if (argc != 2 || fd < 0)
		return 2;
	a.sin_port = htons((unsigned short)atoi(argv[1]));
	if (bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0)
		return 1;
	for (;;) {
		struct sockaddr_in from;
		socklen_t fromlen = sizeof(from);
		ssize_t n = recvfrom(fd, buf, sizeof(buf), 0, (struct sockaddr *)&from, &fromlen);

		if (n >= 0)
			sendto(fd, buf, (size_t)n, 0, (struct sockaddr *)&from, fromlen);
	}
}
