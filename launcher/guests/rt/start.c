/*
 * start.c: from entry.S to main() and out again.
 *
 * rt_main() runs at the guest's virtual addresses after LGUEST_INIT (entry.S).  It calls the
 * program's main(); a main that returns powers the guest off (CRASH "Power down", spec 10
 * step 10), which the launcher reports as a clean exit.
 */
#include "lguest.h"

uint8_t boot_stack[BOOT_STACK_SIZE] __attribute__((aligned(4096)));
uint32_t boot_params_phys;

/* Default: nothing to do before LGUEST_INIT.  Tests of the INIT rules define their own. */
__attribute__((weak)) void rt_pre_init(void)
{
}

_Noreturn void rt_main(void);
_Noreturn void rt_main(void)
{
	main();
	lguest_power_off();
}

_Noreturn void lguest_crash(const char *msg)
{
	for (;;)
		hcall(LHCALL_CRASH, __pa(msg), 0, 0);
}

_Noreturn void lguest_power_off(void)
{
	lguest_crash("Power down");
}

uint32_t guest_mem_size(void)
{
	const uint8_t *zero_page = __va(boot_params_phys);
	const uint32_t *first_entry = (const uint32_t *)(zero_page + BOOT_E820_MAP);

	/* {u64 addr, u64 size, u32 type}: guest RAM is below 4 GB, the low word suffices. */
	return first_entry[2];
}
