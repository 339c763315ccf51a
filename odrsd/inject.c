/* Sending frames: one AF_PACKET socket, opened while privileged, for every interface. */
#include <errno.h>
#include <linux/if_bridge.h>
#include <linux/if_link.h>
#include <linux/if_packet.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

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

static bool bridge_filters_vlans(unsigned ifindex)
{
	char name[IF_NAMESIZE], path[128];
	FILE *f;
	int on = 0;

	if (!if_indextoname(ifindex, name))
		return false;
	snprintf(path, sizeof(path), "/sys/class/net/%s/brport/bridge/bridge/vlan_filtering", name);
	if (!(f = fopen(path, "re")))
		return false; /* not a bridge port */
	if (fscanf(f, "%d", &on) != 1)
		on = 0;
	fclose(f);
	return on;
}

/* The untagged VLANs in one RTM_NEWLINK of the port, appended to vids[*n..max). */
static void port_untagged(const struct nlmsghdr *nh, uint16_t *vids, size_t max, size_t *n)
{
	const struct ifinfomsg *ifi = NLMSG_DATA(nh);
	int len = (int)IFLA_PAYLOAD(nh);

	for (const struct rtattr *a = IFLA_RTA(ifi); RTA_OK(a, len); a = RTA_NEXT(a, len)) {
		int spec = (int)RTA_PAYLOAD(a);

		if (a->rta_type != IFLA_AF_SPEC)
			continue;
		for (const struct rtattr *v = RTA_DATA(a); RTA_OK(v, spec); v = RTA_NEXT(v, spec)) {
			const struct bridge_vlan_info *info = RTA_DATA(v);

			if (v->rta_type == IFLA_BRIDGE_VLAN_INFO && RTA_PAYLOAD(v) >= sizeof(*info) &&
			    (info->flags & BRIDGE_VLAN_INFO_UNTAGGED) && *n < max)
				vids[(*n)++] = info->vid;
		}
	}
}

int inject_tap_untagged(unsigned ifindex, uint16_t *vids, size_t max)
{
	struct {
		struct nlmsghdr nh;
		struct ifinfomsg ifi;
		struct rtattr ext;
		uint32_t mask;
	} req = {
		.nh = { .nlmsg_len = sizeof(req),
			.nlmsg_type = RTM_GETLINK,
			.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP },
		.ifi = { .ifi_family = AF_BRIDGE },
		.ext = { .rta_len = RTA_LENGTH(sizeof(uint32_t)), .rta_type = IFLA_EXT_MASK },
		.mask = RTEXT_FILTER_BRVLAN,
	};
	char buf[16384] __attribute__((aligned(NLMSG_ALIGNTO)));
	size_t n = 0;
	int fd, r = 0;
	bool done = false;

	if (!bridge_filters_vlans(ifindex))
		return 0;
	/* The kernel answers a bridge port's VLANs only in a dump of all ports. */
	if ((fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE)) < 0)
		return -errno;
	if (send(fd, &req, sizeof(req), 0) < 0)
		r = -errno;
	while (!r && !done) {
		ssize_t got = recv(fd, buf, sizeof(buf), 0);
		unsigned left = got > 0 ? (unsigned)got : 0;

		if (got < 0) {
			r = -errno;
			break;
		}
		for (const struct nlmsghdr *nh = (const void *)buf; NLMSG_OK(nh, left);
		     nh = NLMSG_NEXT(nh, left)) {
			if (nh->nlmsg_type == NLMSG_DONE) {
				done = true;
			} else if (nh->nlmsg_type == NLMSG_ERROR) {
				r = ((const struct nlmsgerr *)NLMSG_DATA(nh))->error;
				r = r ? r : -EPROTO;
				break;
			} else if (nh->nlmsg_type == RTM_NEWLINK &&
				   ((const struct ifinfomsg *)NLMSG_DATA(nh))->ifi_index == (int)ifindex) {
				port_untagged(nh, vids, max, &n);
			}
		}
	}
	close(fd);
	return r ? r : (int)n;
}
