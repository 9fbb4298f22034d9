/*
 * user.S: the programs the `user` command runs at privilege level 3.
 *
 * They are position-dependent on purpose: user.c copies the bytes between user_programs_start
 * and user_programs_end to a page mapped at USER_CODE (readable by user mode, nothing else is),
 * so every address a program uses is written as USER_CODE + (label - user_programs_start).
 * They reach the kernel only through int $0x80 (a DPL-3 trap gate): EAX = call, EBX, ECX args.
 */
#include "lguest.h"
#include "user.h"

#define UADDR(label) (USER_CODE + ((label) - user_programs_start))

	.section .rodata.user, "a"
	.globl user_programs_start, user_programs_end, user_hello, user_kernel_peek
user_programs_start:

/* Say hello, add up 1..100 and exit with the sum. */
user_hello:
	movl	$SYS_WRITE, %eax
	movl	$UADDR(hello_text), %ebx
	movl	$(hello_end - hello_text), %ecx
	int	$SYSCALL_VECTOR
	xorl	%ebx, %ebx
	movl	$100, %ecx
1:	addl	%ecx, %ebx
	loop	1b
	movl	$SYS_EXIT, %eax
	int	$SYSCALL_VECTOR
	ud2

/* Try to read the kernel's memory: user mode may not, so this one ends with a page fault. */
user_kernel_peek:
	movl	$SYS_WRITE, %eax
	movl	$UADDR(peek_text), %ebx
	movl	$(peek_end - peek_text), %ecx
	int	$SYSCALL_VECTOR
	movl	PAGE_OFFSET + LOAD_PHYSICAL_ADDR, %ebx
	movl	$SYS_EXIT, %eax
	int	$SYSCALL_VECTOR
	ud2

hello_text:
	.ascii	"hello from user mode\n"
hello_end:
peek_text:
	.ascii	"reading kernel memory at 0xc0100000...\n"
peek_end:
user_programs_end:
