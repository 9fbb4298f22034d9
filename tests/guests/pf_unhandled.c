/* pf_unhandled (spec 5.2): a page fault with no #PF entry in the IDT: killed
 * "unhandled trap 14 at <eip> (<cr2>)"; the address is printed first for the test. */
#define GUEST "pf_unhandled"
#include "check.h"

int main(void)
{
	printk("reading 0x80000010\n");
	read_u32(0x80000010);
	panic("FAIL " GUEST ": an unmapped read did not kill");
}
