/* bad_hypercall (row 32): hypercall 11 does not exist: killed "Bad hypercall 11\n". */
#include "lguest.h"

int main(void)
{
	hcall(11, 0, 0, 0);
	panic("FAIL bad_hypercall: hypercall 11 was accepted");
}
