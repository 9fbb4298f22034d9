/*
 * traps.c: the guest's IDT, one entry at a time through LOAD_IDT_ENTRY (spec 5.3), and the C
 * side of the entry stubs in traps.S.
 *
 * An IDT entry is the usual i386 gate: lo = selector << 16 | handler[15:0], hi = handler[31:16]
 * | present | dpl << 13 | type << 8.  The Host forces the selector to its own CS and keeps the
 * handler, type and DPL.  Each vector's stub is trap_stubs + 16 * vector (traps.S).
 */
#include "lguest.h"

#define IDT_PRESENT 0x8000
#define STUB_BYTES 16

/* trap_common pushes 8 registers (pushal) and 4 segments below the vector and error code. */
_Static_assert(offsetof(struct trap_frame, vector) == 12 * 4, "struct trap_frame vs traps.S");
_Static_assert(offsetof(struct trap_frame, eip) == 14 * 4, "struct trap_frame vs traps.S");

extern char trap_stubs[];

static trap_handler_t trap_handlers[IDT_ENTRIES];

static uint32_t stub_address(unsigned int vector)
{
	return (uint32_t)trap_stubs + STUB_BYTES * vector;
}

uint32_t idt_entry_lo(unsigned int vector)
{
	return (GUEST_CS & ~3u) << 16 | (stub_address(vector) & 0xFFFF);
}

uint32_t idt_entry_hi(unsigned int vector, unsigned int type, unsigned int dpl)
{
	return (stub_address(vector) & 0xFFFF0000) | IDT_PRESENT | (dpl & 3) << 13 | (type & 0xF) << 8;
}

void set_trap_function(unsigned int vector, trap_handler_t fn)
{
	trap_handlers[vector % IDT_ENTRIES] = fn;
}

void set_trap_handler(unsigned int vector, trap_handler_t fn, unsigned int type, unsigned int dpl)
{
	set_trap_function(vector, fn);
	hcall(LHCALL_LOAD_IDT_ENTRY, vector, idt_entry_lo(vector), idt_entry_hi(vector, type, dpl));
}

void clear_trap_handler(unsigned int vector)
{
	hcall(LHCALL_LOAD_IDT_ENTRY, vector, 0, 0);
	trap_handlers[vector % IDT_ENTRIES] = 0;
}

/* Called by trap_common with the frame on the stack it interrupted. */
void trap_dispatch(struct trap_frame *frame);
void trap_dispatch(struct trap_frame *frame)
{
	trap_handler_t fn = trap_handlers[frame->vector % IDT_ENTRIES];

	if (!fn)
		panic("no handler for trap %u at %#x (%#x)", frame->vector, frame->eip,
		      frame->error_code);
	fn(frame);
}

/* Flat 4 GB segments: the kernel's at privilege 1 (the Host would force that anyway) and the
 * user's at privilege 3, in the slots Linux uses (spec 7.2). */
static uint32_t gdt[GDT_ENTRIES][2] __attribute__((aligned(8)));

void rt_load_user_gdt(void)
{
	static const uint32_t user_cs[2] = {0x0000FFFF, 0x00CFFA00};
	static const uint32_t user_ds[2] = {0x0000FFFF, 0x00CFF200};

	gdt[GDT_ENTRY_KERNEL_CS][0] = KERNEL_CS_DESCRIPTOR_0;
	gdt[GDT_ENTRY_KERNEL_CS][1] = KERNEL_CS_DESCRIPTOR_1;
	gdt[GDT_ENTRY_KERNEL_DS][0] = KERNEL_DS_DESCRIPTOR_0;
	gdt[GDT_ENTRY_KERNEL_DS][1] = KERNEL_DS_DESCRIPTOR_1;
	memcpy(gdt[USER_CS >> 3], user_cs, sizeof(user_cs));
	memcpy(gdt[USER_DS >> 3], user_ds, sizeof(user_ds));
	hcall(LHCALL_LOAD_GDT, __pa(gdt), GDT_ENTRIES, 0);
}
