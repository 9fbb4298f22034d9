/* breakpoint (spec 5.2): int3 is reflected to vector 3 with EIP after the instruction. */
#define GUEST "breakpoint"
#include "check.h"

extern char after_int3[];
static volatile uint32_t traps, eip;

static void breakpoint(struct trap_frame *frame)
{
	traps++;
	eip = frame->eip;
}

int main(void)
{
	set_trap_handler(3, breakpoint, IDT_TYPE_TRAP_GATE, 1);
	__asm__ __volatile__("int3\n"
			     ".globl after_int3\n"
			     "after_int3:");
	CHECK(traps == 1, "%u breakpoint traps, want 1", traps);
	CHECK(eip == (uint32_t)after_int3, "EIP %#x, want %#x", eip, (uint32_t)after_int3);
	pass();
	return 0;
}
