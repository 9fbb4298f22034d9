/* user_page_fault (spec 5.2, 5.4): page faults from user mode are reflected on the SET_STACK
 * stack with the user bit in the error code: read of a non-present page 4, write to a
 * supervisor-only page 7 -- and cr2 in lguest_data.  The kernel writes the supervisor page
 * first, so it is mapped (2.6.24's shadow PTE present) and the error code has the present bit
 * as on hardware; untouched, 2.6.24 would have reported 6 from its empty shadow entry. */
#define GUEST "user_page_fault"
#include "check.h"

#define UNMAPPED 0x80000040u
#define SUPERVISOR_VA 0x80400000u
static uint32_t table[1024] __attribute__((aligned(4096)));
static uint8_t page[PAGE_SIZE] __attribute__((aligned(4096)));

static void user_read(void)
{
	(void)*(volatile uint32_t *)UNMAPPED;
	__builtin_trap(); /* the trap above must end the user code */
}

static void user_write(void)
{
	*(volatile uint32_t *)SUPERVISOR_VA = 1;
	__builtin_trap(); /* the trap above must end the user code */
}

int main(void)
{
	prepare_user_mode();
	set_trap_handler(TRAP_PF, user_trap_return, IDT_TYPE_INTERRUPT_GATE, 1);
	install_page_table(SUPERVISOR_VA, table);
	set_pte(table, SUPERVISOR_VA, __pa(page) | PTE_PRESENT | PTE_RW); /* no PTE_USER */
	write_u32(SUPERVISOR_VA, 0);

	uint32_t error = enter_user(user_read);
	CHECK(trap_from_user(&user_trap), "the read fault did not come from user mode");
	CHECK(error == 4, "user read of a non-present page: error %#x, want 4", error);
	CHECK(lguest_data.cr2 == UNMAPPED, "cr2 %#x, want %#x", lguest_data.cr2, UNMAPPED);

	error = enter_user(user_write);
	CHECK(error == 7, "user write to a supervisor page: error %#x, want 7", error);
	CHECK(lguest_data.cr2 == SUPERVISOR_VA, "cr2 %#x, want %#x", lguest_data.cr2,
	      SUPERVISOR_VA);
	pass();
	return 0;
}
