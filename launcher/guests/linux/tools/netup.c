/*
 * netup: give a network interface an IPv4 address and bring it up, the 2.6.24 way (ioctls on an
 * AF_INET socket through socketcall(2); klibc's ipconfig calls socket(2), which 2.6.24 lacks).
 *
 *   netup IFACE ADDRESS[/PREFIX] [GATEWAY]   e.g. netup eth0 10.0.2.15/24 10.0.2.2
 *   netup [IFACE]                            lo as 127.0.0.1/8, then IFACE (default eth0) as the
 *                                            kernel command line's ip= says (below)
 *
 * /init runs `netup eth0` when the guest has a network device.  The command line form is the
 * kernel's own (Documentation/nfsroot.txt), of which CLIENT, GATEWAY and NETMASK are used:
 *   ip=CLIENT[:SERVER[:GATEWAY[:NETMASK]]]
 * Without ip= the interface gets 10.0.2.15/24 (/proc must be mounted to read it).  The prefix
 * defaults to 24.  Exit status 0 when the interfaces are up, 1 otherwise.
 */
#include "net.h"

#define SIOCADDRT 0x890B
#define SIOCGIFFLAGS 0x8913
#define SIOCSIFFLAGS 0x8914
#define SIOCSIFADDR 0x8916
#define SIOCSIFNETMASK 0x891C
#define IFF_UP 0x1
#define RTF_UP 0x1
#define RTF_GATEWAY 0x2
#define ENODEV 19

#define DEFAULT_ADDRESS "10.0.2.15"
#define DEFAULT_PREFIX 24

struct ifreq {
	char name[16];
	union {
		struct sockaddr_in addr;
		short flags;
	} u;
};

struct rtentry {
	u32 pad1;
	struct sockaddr_in dst, gateway, genmask;
	u16 flags;
	short pad2;
	u32 pad3;
	void *pad4;
	short metric;
	char *dev;
	u32 mtu, window;
	u16 irtt;
};

struct config {
	char device[16];
	u32 address, netmask, gateway; /* network order; gateway 0 if none */
};

static struct sockaddr_in inet(u32 address)
{
	struct sockaddr_in sin = {AF_INET, 0, address, {0}};
	return sin;
}

static u32 prefix_mask(long prefix)
{
	u32 host = prefix >= 32 ? 0 : 0xffffffffu >> prefix;
	u32 mask = ~host;
	return mask >> 24 | (mask >> 8 & 0xff00) | (mask << 8 & 0xff0000) | mask << 24;
}

static int fail(const char *device, const char *what, long error)
{
	put_err("netup: ");
	put_err(device);
	put_err(": ");
	put_err(what);
	put_err(error == -ENODEV ? ": no such device\n" : " failed\n");
	return 1;
}

static int configure(int sock, const struct config *c)
{
	struct ifreq req;
	long error;

	memset(&req, 0, sizeof(req));
	memcpy(req.name, c->device, sizeof(req.name) - 1);
	req.u.addr = inet(c->address);
	if ((error = sys_ioctl(sock, SIOCSIFADDR, (long)&req)) < 0)
		return fail(c->device, "setting the address", error);
	req.u.addr = inet(c->netmask);
	if ((error = sys_ioctl(sock, SIOCSIFNETMASK, (long)&req)) < 0)
		return fail(c->device, "setting the netmask", error);
	if ((error = sys_ioctl(sock, SIOCGIFFLAGS, (long)&req)) < 0)
		return fail(c->device, "reading the flags", error);
	req.u.flags |= IFF_UP;
	if ((error = sys_ioctl(sock, SIOCSIFFLAGS, (long)&req)) < 0)
		return fail(c->device, "bringing it up", error);
	if (c->gateway) {
		struct rtentry route;
		memset(&route, 0, sizeof(route));
		route.dst = inet(0);
		route.genmask = inet(0);
		route.gateway = inet(c->gateway);
		route.flags = RTF_UP | RTF_GATEWAY;
		if ((error = sys_ioctl(sock, SIOCADDRT, (long)&route)) < 0)
			return fail(c->device, "adding the default route", error);
	}
	put("netup: ");
	put(c->device);
	put(" ");
	put_ip(c->address);
	put(" netmask ");
	put_ip(c->netmask);
	if (c->gateway) {
		put(" gateway ");
		put_ip(c->gateway);
	}
	put(" up\n");
	return 0;
}

static int has_device(int sock, const char *device)
{
	struct ifreq req;
	memset(&req, 0, sizeof(req));
	memcpy(req.name, device, str_len(device) + 1);
	return sys_ioctl(sock, SIOCGIFFLAGS, (long)&req) == 0;
}

/* One ':'-separated field of ip=, copied into `out` (at most `size` - 1 bytes). */
static const char *field(const char *s, char *out, u32 size)
{
	u32 n = 0;
	for (; *s && *s != ':' && *s != ' ' && *s != '\n'; s++)
		if (n + 1 < size)
			out[n++] = *s;
	out[n] = 0;
	return *s == ':' ? s + 1 : s;
}

/* The configuration /proc/cmdline's ip= gives (or the default); 0 if ip= is malformed. */
static int from_cmdline(struct config *c)
{
	static char line[1024];
	char client[16], server[16], gateway[16], netmask[16];
	const char *s = DEFAULT_ADDRESS, *p;
	int fd = sys_open("/proc/cmdline", 0);
	long n = fd < 0 ? 0 : sys_read(fd, line, sizeof(line) - 1);

	if (fd >= 0)
		sys_close(fd);
	line[n > 0 ? n : 0] = 0;
	for (p = line; *p; p++)
		if ((p == line || p[-1] == ' ') && p[0] == 'i' && p[1] == 'p' && p[2] == '=')
			s = p + 3;
	c->netmask = prefix_mask(DEFAULT_PREFIX);
	c->gateway = 0;
	s = field(s, client, sizeof(client));
	s = field(s, server, sizeof(server));
	s = field(s, gateway, sizeof(gateway));
	field(s, netmask, sizeof(netmask));
	p = client;
	if (!parse_ip(&p, &c->address) || *p)
		return 0;
	p = gateway;
	if (*p && (!parse_ip(&p, &c->gateway) || *p))
		return 0;
	p = netmask;
	if (*p && (!parse_ip(&p, &c->netmask) || *p))
		return 0;
	return 1;
}

/* ADDRESS[/PREFIX] [GATEWAY] */
static int from_arguments(struct config *c, char **argv, int argc)
{
	const char *p = argv[0];
	long prefix = DEFAULT_PREFIX;

	if (!parse_ip(&p, &c->address))
		return 0;
	if (*p == '/') {
		p++;
		prefix = parse_u32(&p);
	}
	if (*p || prefix < 0 || prefix > 32)
		return 0;
	c->netmask = prefix_mask(prefix);
	c->gateway = 0;
	p = argc > 1 ? argv[1] : "";
	return !*p || (parse_ip(&p, &c->gateway) && !*p);
}

static int usage(void)
{
	put_err("usage: netup [IFACE [ADDRESS[/PREFIX] [GATEWAY]]]\n");
	return 1;
}

/* IFACE's name into c->device; 0 if too long. */
static int set_device(struct config *c, const char *name)
{
	u32 n = str_len(name);
	if (n >= sizeof(c->device))
		return 0;
	memcpy(c->device, name, n + 1);
	return 1;
}

int main(int argc, char **argv, char **envp)
{
	struct config loopback = {"lo", 0x0100007f, 0x000000ff, 0}, eth;
	int sock = (int)sys_socket(AF_INET, SOCK_DGRAM, 0);

	(void)envp;
	if (sock < 0) {
		put_err("netup: no AF_INET socket (is the kernel built with CONFIG_INET?)\n");
		return 1;
	}
	if (argc > 4 || !set_device(&eth, argc > 1 ? argv[1] : "eth0"))
		return usage();
	if (argc > 2)
		return from_arguments(&eth, argv + 2, argc - 2) ? configure(sock, &eth) : usage();
	if (configure(sock, &loopback))
		return 1;
	if (!from_cmdline(&eth)) {
		put_err("netup: cannot read ip=CLIENT[:SERVER[:GATEWAY[:NETMASK]]] on the kernel "
			"command line\n");
		return 1;
	}
	if (!has_device(sock, eth.device)) {
		put_err("netup: no ");
		put_err(eth.device);
		put_err("\n");
		return 1;
	}
	return configure(sock, &eth);
}
