/* pf_reflect (spec 5.2, 5.4): a page fault the guest's tables do not allow is reflected to its
 * #PF handler with cr2 in lguest_data and the error code on the stack: read of a non-present
 * page 0, write 2, write to a read-only page 3.  The handler maps the page and the faulting
 * instruction is re-run. */
#define GUEST "pf_reflect"
#include "check.h"

#define VA 0x80001234u
static uint32_t table[1024] __attribute__((aligned(4096)));
static uint8_t page[PAGE_SIZE] __attribute__((aligned(4096)));
static volatile uint32_t faults, last_cr2, last_error, map_flags;

static void page_fault(struct trap_frame *frame)
{
	faults++;
	last_cr2 = lguest_data.cr2;
	last_error = frame->error_code;
	set_pte(table, last_cr2, __pa(page) | map_flags);
}

int main(void)
{
	set_trap_handler(TRAP_PF, page_fault, IDT_TYPE_INTERRUPT_GATE, 1);
	install_page_table(VA, table);
	((volatile uint32_t *)page)[0x234 / 4] = 0xCAFEF00D;

	map_flags = PTE_PRESENT; /* read-only */
	CHECK(read_u32(VA) == 0xCAFEF00D, "read through the new mapping gave the wrong word");
	CHECK(faults == 1, "%u faults for a read of a non-present page", faults);
	CHECK(last_cr2 == VA, "cr2 %#x, want %#x", last_cr2, VA);
	CHECK(last_error == 0, "error code %#x for a read, want 0", last_error);

	map_flags = PTE_PRESENT | PTE_RW;
	write_u32(VA, 1);
	CHECK(faults == 2, "%u faults after a write to a read-only page", faults);
	CHECK(last_error == 3, "error code %#x for a write to a read-only page, want 3",
	      last_error);

	set_pte(table, VA, 0);
	write_u32(VA + 4, 2);
	CHECK(faults == 3, "%u faults after a write to a non-present page", faults);
	CHECK(last_cr2 == VA + 4, "cr2 %#x, want %#x", last_cr2, VA + 4);
	CHECK(last_error == 2, "error code %#x for a write to a non-present page, want 2",
	      last_error);
	pass();
	return 0;
}
