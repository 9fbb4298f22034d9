/* notify_zero (row 19): NOTIFY(0) means "no notify" and is dropped: the launcher never sees it
 * (if it did, it would print the string this guest puts at guest-physical 0). */
#define GUEST "notify_zero"
#include "check.h"

int main(void)
{
	memcpy(__va(0), "LEAKED NOTIFY(0)\n", 18);
	lguest_notify(0);
	pass();
	return 0;
}
