# Exercise 3.3: one ConvLSTM step in Keras - solution (loaded by tools/run_course.py for the book and CI)
def my_convlstm_step(x_t, h, c, kernel, recurrent_kernel, bias, w_ci, w_cf, w_co):
    ops = keras.ops
    z = ops.conv(x_t, kernel, padding="same") + ops.conv(h, recurrent_kernel, padding="same") + bias
    z_i, z_f, z_c, z_o = ops.split(z, 4, axis=-1)
    i = ops.sigmoid(z_i + w_ci * c)                 # Eq. (12)
    f = ops.sigmoid(z_f + w_cf * c)                 # Eq. (13)
    c_new = f * c + i * ops.tanh(z_c)               # Eq. (14)
    o = ops.sigmoid(z_o + w_co * c_new)             # Eq. (15): the new cell state
    return o * ops.tanh(c_new), c_new               # Eq. (16)
