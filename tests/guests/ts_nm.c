/* ts_nm (spec 3 TS, spec 5.2 #NM): with TS set by the TS hypercall, an FPU instruction is a
 * #NM reflected to the guest, whose handler clears TS so the instruction then runs; with TS
 * clear, FPU instructions do not trap. */
#define GUEST "ts_nm"
#include "check.h"

static volatile uint32_t nm_traps;

static void device_not_available(struct trap_frame *frame)
{
	(void)frame;
	nm_traps++;
	hcall(LHCALL_TS, 0, 0, 0);
}

int main(void)
{
	set_trap_handler(TRAP_NM, device_not_available, IDT_TYPE_INTERRUPT_GATE, 1);
	hcall(LHCALL_TS, 0, 0, 0);
	__asm__ __volatile__("fninit");
	CHECK(nm_traps == 0, "#NM with TS clear");
	hcall(LHCALL_TS, 8, 0, 0);
	__asm__ __volatile__("fninit");
	CHECK(nm_traps == 1, "%u #NM traps with TS set, want 1", nm_traps);
	__asm__ __volatile__("fninit");
	CHECK(nm_traps == 1, "#NM again after the handler cleared TS");
	pass();
	return 0;
}
