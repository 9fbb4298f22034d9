/*
 * tool.h: the whole runtime of a freestanding i386 tool for the Linux 2.6.24 guest's initramfs.
 *
 * Debian's glibc refuses kernels older than 3.2, so a tool beyond klibc's is plain C with raw
 * `int $0x80` system calls (the 2.6.24 i386 numbers below) and no libc.  Each tools/NAME.c is
 * one program, built by launcher/guests/linux/initramfs.py into /bin/NAME with
 * `gcc -m32 -static -nostdlib -ffreestanding`; it includes this header once and defines
 * `int main(int argc, char **argv, char **envp)`.  A negative return from a sys_* call is
 * -errno, as the kernel gives it.
 */
#ifndef TOOL_H
#define TOOL_H

#define SYS_exit 1
#define SYS_read 3
#define SYS_write 4
#define SYS_open 5
#define SYS_close 6
#define SYS_execve 11
#define SYS_ioctl 54
#define SYS_dup2 63
#define SYS_setsid 66
#define SYS_socketcall 102

#define O_RDWR 2
#define TIOCSCTTY 0x540E

typedef unsigned int size_t;

static inline long syscall3(long number, long a, long b, long c)
{
	long result;
	__asm__ volatile("int $0x80"
			 : "=a"(result)
			 : "0"(number), "b"(a), "c"(b), "d"(c)
			 : "memory");
	return result;
}

static inline long sys_write(int fd, const void *buf, size_t len)
{
	return syscall3(SYS_write, fd, (long)buf, (long)len);
}

static inline long sys_open(const char *path, int flags)
{
	return syscall3(SYS_open, (long)path, flags, 0);
}

static inline long sys_ioctl(int fd, unsigned long request, long arg)
{
	return syscall3(SYS_ioctl, fd, (long)request, arg);
}

static inline long sys_dup2(int from, int to)
{
	return syscall3(SYS_dup2, from, to, 0);
}

static inline long sys_close(int fd)
{
	return syscall3(SYS_close, fd, 0, 0);
}

static inline long sys_setsid(void)
{
	return syscall3(SYS_setsid, 0, 0, 0);
}

static inline long sys_execve(const char *path, char *const argv[], char *const envp[])
{
	return syscall3(SYS_execve, (long)path, (long)argv, (long)envp);
}

static inline size_t str_len(const char *s)
{
	size_t n = 0;
	while (s[n])
		n++;
	return n;
}

/* "NAME: TEXT" and a newline on stderr. */
static inline void complain(const char *name, const char *text)
{
	sys_write(2, name, str_len(name));
	sys_write(2, ": ", 2);
	sys_write(2, text, str_len(text));
	sys_write(2, "\n", 1);
}

int main(int argc, char **argv, char **envp);

/* The process entry: argc, argv and envp from the stack the kernel built, exit(main(...)). */
__asm__(".globl _start\n"
	"_start:\n"
	"	xorl %ebp, %ebp\n"
	"	movl (%esp), %eax\n"
	"	leal 4(%esp), %ecx\n"
	"	leal 8(%esp,%eax,4), %edx\n"
	"	andl $-16, %esp\n"
	"	subl $4, %esp\n"
	"	pushl %edx\n"
	"	pushl %ecx\n"
	"	pushl %eax\n"
	"	call main\n"
	"	movl %eax, %ebx\n"
	"	movl $1, %eax\n"
	"	int $0x80\n");

#endif
