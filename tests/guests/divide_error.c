/* divide_error (spec 5.2, 5.4): #DE is reflected through a trap gate with the exact frame: no
 * error code (vector 0 has none), EIP at the faulting div, CS 0x61; the handler skips it. */
#define GUEST "divide_error"
#include "check.h"

extern char div_insn[];
static volatile uint32_t traps, eip, cs, error_code;

static void divide(struct trap_frame *frame)
{
	traps++;
	eip = frame->eip;
	cs = frame->cs;
	error_code = frame->error_code;
	frame->eip += 2; /* div %ecx is f7 f1 */
}

int main(void)
{
	set_trap_handler(TRAP_DE, divide, IDT_TYPE_TRAP_GATE, 1);
	__asm__ __volatile__(".globl div_insn\n"
			     "div_insn: divl %%ecx"
			     :
			     : "a"(1), "d"(0), "c"(0));
	CHECK(traps == 1, "%u divide traps, want 1", traps);
	CHECK(eip == (uint32_t)div_insn, "EIP %#x, want the div at %#x", eip, (uint32_t)div_insn);
	CHECK(cs == GUEST_CS, "CS %#x, want %#x", cs, GUEST_CS);
	CHECK(error_code == 0, "frame holds error code %#x: the Host pushed one", error_code);
	pass();
	return 0;
}
