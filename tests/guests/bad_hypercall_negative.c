/* bad_hypercall_negative (spec 3): the kill text prints the call number as a signed long:
 * hypercall 0xFFFFFFFF is "Bad hypercall -1\n". */
#include "lguest.h"

int main(void)
{
	hcall(0xFFFFFFFF, 0, 0, 0);
	panic("FAIL bad_hypercall_negative: hypercall -1 was accepted");
}
