/* crash_near_limit (row 34): CRASH with its text 100 bytes below the end of guest memory, so
 * the Host's 128-byte read runs past it: killed "bad read address 0x... len 128".  The address
 * is printed first so the test can match it exactly. */
#define GUEST "crash_near_limit"
#include "check.h"

static uint32_t pfnlimit;

void rt_pre_init(void)
{
	*PHYS_PTR(pfnlimit) = phys_find_pfnlimit();
}

int main(void)
{
	uint32_t text = pfnlimit * PAGE_SIZE - 100;

	printk("CRASH text at %#x\n", text);
	hcall(LHCALL_CRASH, text, 0, 0);
	panic("FAIL " GUEST ": CRASH read past the end of memory");
}
