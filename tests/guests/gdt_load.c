/* gdt_load (spec 7.2): LOAD_GDT copies the entries and fixes them up: DPL 0 becomes DPL 1 (so
 * the kernel can load a descriptor written for ring 0), other DPLs stay, the accessed bit is
 * set; a shorter table leaves the entries beyond it as they were. */
#define GUEST "gdt_load"
#include "check.h"

#define RING0_DATA 20
#define RING3_DATA 21
static uint32_t gdt[GDT_ENTRIES][2] __attribute__((aligned(8)));

int main(void)
{
	gdt[GDT_ENTRY_KERNEL_CS][0] = KERNEL_CS_DESCRIPTOR_0;
	gdt[GDT_ENTRY_KERNEL_CS][1] = KERNEL_CS_DESCRIPTOR_1;
	gdt[GDT_ENTRY_KERNEL_DS][0] = KERNEL_DS_DESCRIPTOR_0;
	gdt[GDT_ENTRY_KERNEL_DS][1] = KERNEL_DS_DESCRIPTOR_1;
	make_descriptor(gdt[RING0_DATA], 0, 0xFFFFF, 0x92); /* present, DPL 0, data RW */
	make_descriptor(gdt[RING3_DATA], 0, 0xFFFFF, 0xF2); /* present, DPL 3, data RW */
	hcall(LHCALL_LOAD_GDT, __pa(gdt), GDT_ENTRIES, 0);

	uint32_t ring0 = access_rights(RING0_DATA << 3 | 1), ring3 = access_rights(RING3_DATA << 3);
	CHECK(ring0, "the DPL-0 descriptor is not visible at privilege level 1");
	CHECK((ring0 >> 13 & 3) == 1, "DPL %u after LOAD_GDT, want 1", ring0 >> 13 & 3);
	CHECK(ring0 & 0x100, "accessed bit not set (%#x)", ring0);
	CHECK((ring3 >> 13 & 3) == 3, "a DPL-3 descriptor became DPL %u", ring3 >> 13 & 3);
	__asm__ __volatile__("movl %0, %%fs" : : "r"(RING0_DATA << 3 | 1));
	__asm__ __volatile__("movl %0, %%fs" : : "r"(0));

	/* Only the first 16 entries: 20 and 21 must survive. */
	memset(gdt[RING0_DATA], 0, 2 * sizeof(gdt[0]));
	hcall(LHCALL_LOAD_GDT, __pa(gdt), 16, 0);
	CHECK(access_rights(RING0_DATA << 3 | 1) == ring0, "entry 20 changed by a 16-entry LOAD_GDT");
	pass();
	return 0;
}
