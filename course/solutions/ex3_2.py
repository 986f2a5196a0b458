# Exercise 3.2: one LSTM step in NumPy - solution (loaded by tools/run_course.py for the book and CI)
def my_lstm_step(x, h, c, kernel, recurrent_kernel, bias, w_ci, w_cf, w_co):
    z = x @ kernel + h @ recurrent_kernel + bias
    z_i, z_f, z_c, z_o = np.split(z, 4, axis=-1)
    i = sigmoid(z_i + w_ci * c)
    f = sigmoid(z_f + w_cf * c)
    c_new = f * c + i * np.tanh(z_c)
    o = sigmoid(z_o + w_co * c_new)
    return o * np.tanh(c_new), c_new
