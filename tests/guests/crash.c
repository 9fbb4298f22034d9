/* crash: CRASH("oops") (spec 11 row 33: "CRASH: oops"). */
#include "lguest.h"

int main(void)
{
	lguest_crash("oops");
}
