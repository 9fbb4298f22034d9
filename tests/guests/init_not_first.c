/* init_not_first (spec 11 row 27): the first hypercall is FLUSH_TLB, not LGUEST_INIT:
 * killed "hypercall 5 before INIT". */
#include "lguest.h"

void rt_pre_init(void)
{
	hcall(LHCALL_FLUSH_TLB, 0, 0, 0);
}

int main(void)
{
	panic("FAIL init_not_first: survived a hypercall before INIT");
}
