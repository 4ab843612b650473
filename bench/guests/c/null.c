/* null: the empty program, for measuring pure start-up cost. */
int main(void) { return 0; }
