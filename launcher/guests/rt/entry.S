/*
 * entry.S: the first instructions of every guest, as in Linux's startup_32 + lguest_entry.
 *
 * The launcher starts us at the ELF entry point, which is the PHYSICAL address of startup
 * (guest.lds), with paging already on through its page tables, which identity-map guest RAM
 * (spec 7.1, 8).  ESI holds the physical address of boot_params; no stack exists yet.
 * Everything here runs at physical addresses until the jump high, so every data reference
 * subtracts PAGE_OFFSET.
 *
 *   1. clear BSS, remember boot_params, take the boot stack;
 *   2. call rt_pre_init() (a no-op unless the guest defines it: tests of the INIT rules);
 *   3. LGUEST_INIT with the physical address of lguest_data: the first hypercall (spec 3.1);
 *   4. map the kernel at PAGE_OFFSET as Linux does: copy the present PDEs of the launcher's
 *      page directory (lguest_data.pgdir, now valid) to index 768 and up, stopping below the
 *      Host's PDE 1023;
 *   5. jump to the virtual address, move the stack up, call rt_main().
 */
#include "lguest.h"

	.section .text.head, "ax"
	.globl startup
startup:
	cld
	movl	$(__bss_start - PAGE_OFFSET), %edi
	movl	$(__bss_stop - PAGE_OFFSET), %ecx
	subl	%edi, %ecx
	shrl	$2, %ecx
	xorl	%eax, %eax
	rep stosl
	movl	%esi, (boot_params_phys - PAGE_OFFSET)
	movl	$(boot_stack - PAGE_OFFSET + BOOT_STACK_SIZE), %esp

	call	rt_pre_init

	movl	$LHCALL_LGUEST_INIT, %eax
	movl	$(lguest_data - PAGE_OFFSET), %edx
	int	$LGUEST_TRAP_ENTRY

	movl	(lguest_data - PAGE_OFFSET + LD_PGDIR), %esi
	leal	((PAGE_OFFSET >> 22) * 4)(%esi), %edi
	movl	$(SWITCHER_PDE - (PAGE_OFFSET >> 22)), %ecx
1:	lodsl
	testl	$PTE_PRESENT, %eax
	jz	2f
	stosl
	loop	1b
2:
	movl	$3f, %eax
	jmp	*%eax
3:
	addl	$PAGE_OFFSET, %esp
	call	rt_main
	/* rt_main never returns; if it did, make the Host say so. */
	ud2
