/*
 * benchnop.c - the trivial child of the process-job benchmark: it starts and exits with 0, so
 * what is measured is only the cost of creating, supervising and reaping a process.
 * Thread: its only one.
 */
int main(void)
{
    return 0;
}
