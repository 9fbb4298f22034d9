/*
 * net.h: what the network tools (netup, ping) add to tool.h: IPv4 sockets through socketcall(2),
 * poll, the clock, and printing and parsing numbers and dotted-quad addresses.
 *
 * 2.6.24 on i386 has no socket(2), sendto(2) ...: every socket call is socketcall(CALL, args[])
 * (include/linux/net.h), which is also why klibc's ipconfig fails there.  Include this header
 * (it includes tool.h) once per program.
 */
#ifndef NET_H
#define NET_H

#include "tool.h"

typedef unsigned char u8;
typedef unsigned short u16;
typedef unsigned int u32;

#define SYS_getpid 20
#define SYS_gettimeofday 78
#define SYS_poll 168

/* socketcall(2)'s calls (include/linux/net.h) */
#define SOCKETCALL_SOCKET 1
#define SOCKETCALL_SENDTO 11
#define SOCKETCALL_RECVFROM 12

#define AF_INET 2
#define SOCK_DGRAM 2
#define SOCK_RAW 3
#define IPPROTO_ICMP 1
#define POLLIN 1

struct sockaddr_in {
	u16 sin_family, sin_port;
	u32 sin_addr; /* network order */
	u8 zero[8];
};

static inline long socketcall(int call, const long *args)
{
	return syscall3(SYS_socketcall, call, (long)args, 0);
}

static inline long sys_socket(int domain, int type, int protocol)
{
	long args[3] = {domain, type, protocol};
	return socketcall(SOCKETCALL_SOCKET, args);
}

static inline long sys_read(int fd, void *buf, size_t len)
{
	return syscall3(SYS_read, fd, (long)buf, (long)len);
}

static inline long sys_getpid(void)
{
	return syscall3(SYS_getpid, 0, 0, 0);
}

/* Microseconds of the wall clock, modulo 2^32: use differences only (they wrap after 71 min). */
static inline u32 now_us(void)
{
	struct {
		long sec, usec;
	} tv;
	syscall3(SYS_gettimeofday, (long)&tv, 0, 0);
	return (u32)tv.sec * 1000000u + (u32)tv.usec;
}

/* Whether `fd` became readable within `ms` milliseconds (fd -1: just sleep). */
static inline int readable(int fd, int ms)
{
	struct {
		int fd;
		short events, revents;
	} p = {fd, POLLIN, 0};
	return syscall3(SYS_poll, (long)&p, 1, ms) > 0;
}

/* gcc may call these for structure copies and initialisers. */
void *memset(void *dst, int c, size_t n)
{
	u8 *d = dst;
	while (n--)
		*d++ = (u8)c;
	return dst;
}

void *memcpy(void *dst, const void *src, size_t n)
{
	u8 *d = dst;
	const u8 *s = src;
	while (n--)
		*d++ = *s++;
	return dst;
}

static inline int str_eq(const char *a, const char *b)
{
	while (*a && *a == *b)
		a++, b++;
	return *a == *b;
}

static inline void put(const char *s)
{
	sys_write(1, s, str_len(s));
}

static inline void put_err(const char *s)
{
	sys_write(2, s, str_len(s));
}

static inline void put_u32(u32 n)
{
	char buf[11], *p = buf + sizeof(buf);
	*--p = 0;
	do
		*--p = (char)('0' + n % 10);
	while (n /= 10);
	put(p);
}

/* Microseconds as milliseconds with three decimals, as ping prints them ("0.123"). */
static inline void put_ms(u32 us)
{
	char frac[5] = {'.', (char)('0' + us / 100 % 10), (char)('0' + us / 10 % 10),
			(char)('0' + us % 10), 0};
	put_u32(us / 1000);
	put(frac);
}

/* An IPv4 address (network order) as a.b.c.d. */
static inline void put_ip(u32 ip)
{
	const u8 *b = (const u8 *)&ip;
	for (int i = 0; i < 4; i++) {
		put_u32(b[i]);
		if (i < 3)
			put(".");
	}
}

/* A decimal number at *s, advancing *s past it; -1 if there is none. */
static inline long parse_u32(const char **s)
{
	long n = -1;
	for (; **s >= '0' && **s <= '9'; (*s)++)
		n = (n < 0 ? 0 : n * 10) + (**s - '0');
	return n;
}

/* a.b.c.d at *s into *ip (network order), advancing *s past it; 0 if malformed. */
static inline int parse_ip(const char **s, u32 *ip)
{
	u8 *b = (u8 *)ip;
	for (int i = 0; i < 4; i++) {
		long part = parse_u32(s);
		if (part < 0 || part > 255 || (i < 3 && *(*s)++ != '.'))
			return 0;
		b[i] = (u8)part;
	}
	return 1;
}

static inline u16 swap16(u16 x)
{
	return (u16)(x << 8 | x >> 8);
}

#endif
