/* Sending frames: one AF_PACKET socket, opened while privileged, for every interface. */
#include <errno.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <string.h>
#include <sys/socket.h>

#include "odrsd.h"

int inject_open(void)
{
	/* Protocol 0: this socket sends and never receives. */
	int fd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);

	return fd < 0 ? -errno : fd;
}

int inject_frame(struct odrsd *d, unsigned ifindex, const uint8_t *frame, size_t len)
{
	struct sockaddr_ll to = {
		.sll_family = AF_PACKET,
		.sll_ifindex = (int)ifindex,
		.sll_halen = ETH_ALEN,
	};

	if (len < WK_ETH_HLEN)
		return -EINVAL;
	memcpy(to.sll_addr, frame, ETH_ALEN);
	if (sendto(d->inject_fd, frame, len, 0, (struct sockaddr *)&to, sizeof(to)) < 0)
		return -errno;
	return 0;
}
