/* set_stack_bad_pages (row 35): SET_STACK for 3 pages (at most 2): killed "bad stack pages 3". */
#include "lguest.h"

int main(void)
{
	hcall(LHCALL_SET_STACK, GUEST_DS, (uint32_t)boot_stack + BOOT_STACK_SIZE, 3);
	panic("FAIL set_stack_bad_pages: SET_STACK accepted 3 pages");
}
