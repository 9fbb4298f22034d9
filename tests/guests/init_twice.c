/* init_twice (row 31): a second LGUEST_INIT: killed "already have lguest_data". */
#include "lguest.h"

int main(void)
{
	hcall(LHCALL_LGUEST_INIT, __pa(&lguest_data), 0, 0);
	panic("FAIL init_twice: a second INIT was accepted");
}
