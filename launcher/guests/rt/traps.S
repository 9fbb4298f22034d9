/*
 * traps.S: the entry stubs for all 256 vectors and the iret path with the noirq window.
 *
 * The Host delivers a trap or interrupt by pushing [SS, ESP when from user mode], EFLAGS (its
 * IF taken from lguest_data.irq_enabled), CS, EIP and, for vectors 8, 10-14 and 17, an error
 * code, then jumping to the IDT entry's handler (spec 5.4).  Each stub pushes a zero error code
 * where the Host pushes none, then its vector, and joins trap_common, which saves the rest as a
 * struct trap_frame (lguest.h), calls trap_dispatch(frame) in traps.c, restores and returns.
 *
 * The return must re-enable interrupts as the stacked EFLAGS say, but our IF is
 * lguest_data.irq_enabled, not the real flag: so lguest_iret stores the stacked IF there and
 * then irets.  Between that store and the iret an interrupt must not be injected (it would
 * land on a stack we are about to leave and nest without bound), so those instructions are
 * [lguest_noirq_start, lguest_noirq_end), which lguest_data names to the Host (spec 10 step 6).
 * The store uses %ss: because %ds may already be the user's.
 */
#include "lguest.h"

	.text
	.globl trap_common
trap_common:
	pushl	%ds
	pushl	%es
	pushl	%fs
	pushl	%gs
	pushal
	movl	$GUEST_DS, %eax
	movl	%eax, %ds
	movl	%eax, %es
	cld
	pushl	%esp
	call	trap_dispatch
	addl	$4, %esp
	popal
	popl	%gs
	popl	%fs
	popl	%es
	popl	%ds
	addl	$8, %esp		/* vector, error code */
	/* fall through */

	.globl lguest_iret
lguest_iret:
	pushl	%eax
	movl	12(%esp), %eax		/* the stacked EFLAGS, above EAX, EIP and CS */
	andl	$X86_EFLAGS_IF, %eax
	.globl lguest_noirq_start
lguest_noirq_start:
	movl	%eax, %ss:(lguest_data + LD_IRQ_ENABLED)
	popl	%eax
	iret
	.globl lguest_noirq_end
lguest_noirq_end:

/* The stubs, 16 bytes apart so trap_stubs can be computed rather than stored. */
	.p2align 4
	.globl trap_stubs
trap_stubs:
	vector = 0
	.rept IDT_ENTRIES
	.p2align 4
	.if (vector < 32) && ((TRAPS_WITH_ERROR_CODE_MASK >> vector) & 1)
	nop
	nop
	.else
	pushl	$0
	.endif
	pushl	$vector
	jmp	trap_common
	vector = vector + 1
	.endr

/*
 * uint32_t run_user(void (*fn)(void), uint32_t user_stack_top)
 * Enter fn at privilege level 3 with the user segments; comes back through user_return().
 */
	.globl run_user
run_user:
	pushl	%ebp
	pushl	%ebx
	pushl	%esi
	pushl	%edi
	pushl	lguest_data + LD_IRQ_ENABLED
	movl	%esp, run_user_kernel_esp
	movl	24(%esp), %ecx		/* fn */
	movl	28(%esp), %edx		/* user stack top */
	pushl	$USER_DS
	pushl	%edx
	pushfl
	andl	$~X86_EFLAGS_IF, (%esp)
	movl	lguest_data + LD_IRQ_ENABLED, %eax
	andl	$X86_EFLAGS_IF, %eax
	orl	%eax, (%esp)
	pushl	$USER_CS
	pushl	%ecx
	movl	$USER_DS, %eax
	movl	%eax, %ds
	movl	%eax, %es
	jmp	lguest_iret

/* _Noreturn void user_return(uint32_t value): called from a trap handler, ends run_user. */
	.globl user_return
user_return:
	movl	4(%esp), %eax
	movl	run_user_kernel_esp, %esp
	popl	lguest_data + LD_IRQ_ENABLED
	popl	%edi
	popl	%esi
	popl	%ebx
	popl	%ebp
	ret

	.bss
	.p2align 2
run_user_kernel_esp:
	.long	0
