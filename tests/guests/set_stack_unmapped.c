/* set_stack_unmapped (spec 3, SET_STACK): a stack whose pages are not mapped (0x80000000 and
 * below: no PDE there): killed "bad stack page 0x...". */
#include "lguest.h"

int main(void)
{
	hcall(LHCALL_SET_STACK, GUEST_DS, 0x80000000, 1);
	panic("FAIL set_stack_unmapped: SET_STACK accepted an unmapped stack");
}
