/* set_stack_bad_segment (row 35): SET_STACK with segment 0x68 (RPL 0): killed
 * "bad stack segment 104". */
#include "lguest.h"

int main(void)
{
	hcall(LHCALL_SET_STACK, GUEST_DS & ~3, (uint32_t)boot_stack + BOOT_STACK_SIZE, 1);
	panic("FAIL set_stack_bad_segment: SET_STACK accepted segment 0x68");
}
